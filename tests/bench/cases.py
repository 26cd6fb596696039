"""The benchmark's cases: the requests an identity system and an administrator's client send,
built for one server from what is loaded in it."""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from extensions.organisations import Kind
from tests.bench.data import Organisation, People
from tests.bench.wrk import Request

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_SIZE = 1000


@dataclass
class Subject:
    """A loaded server as the cases see it: where, as whom, and which resources exist."""

    base_path: str
    token: str
    org_number: str
    domain: str
    user_ids: list[str]
    user_names: list[str]
    big_group: str
    non_members: list[str]
    fragments: list[str]
    org_users: int = 0
    # Differs between servers on the same database, so that their PATCHes change something.
    salt: int = 0
    extension: bool = True
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    def people(self) -> People:
        org = Organisation(self.org_number, "", Kind.kommun, self.domain, 0)
        return People(org, seed=self.rng.randrange(1 << 30), extension=self.extension)


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _filter(subject: Subject, expression: str) -> str:
    return f"{subject.base_path}/Users?filter={urllib.parse.quote(expression)}"


def get_by_id(s: Subject) -> list[Request]:
    return [Request("GET", f"{s.base_path}/Users/{i}") for i in s.user_ids]


def user_name_eq(s: Subject) -> list[Request]:
    return [Request("GET", _filter(s, f'userName eq "{name}"')) for name in s.user_names]


def family_name_co(s: Subject) -> list[Request]:
    return [Request("GET", _filter(s, f'name.familyName co "{f}"')) for f in s.fragments]


def sorted_page(s: Subject) -> list[Request]:
    """The first ten pages of 100, sorted by family name."""
    path = f"{s.base_path}/Users?sortBy=name.familyName&count=100&startIndex="
    return [Request("GET", f"{path}{1 + 100 * page}") for page in range(10)]


def create_user(s: Subject) -> list[Request]:
    people = s.people()
    return [
        Request("POST", f"{s.base_path}/Users", _json(people.body(tag="{n}"))) for _ in range(50)
    ]


GIVEN = ["Anna", "Åsa", "Björn", "Märta", "Jörgen", "Linnéa", "Håkan", "Sofia"]


def patch_given_name(s: Subject) -> list[Request]:
    """Each request a given name no request gave before ("{n}"): a PATCH that leaves the
    name as it is writes nothing, and a run on a reused dataset, or a second round, would
    otherwise send the names the one before it left."""
    requests = []
    for index, resource_id in enumerate(s.user_ids):
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {
                    "op": "replace",
                    "path": "name.givenName",
                    "value": f"{GIVEN[(index + s.salt) % len(GIVEN)]} {{n}}",
                }
            ],
        }
        requests.append(Request("PATCH", f"{s.base_path}/Users/{resource_id}", _json(body)))
    return requests


def add_member(s: Subject) -> list[Request]:
    """One new member per request into the big group (members already in it are no-ops)."""
    path = f"{s.base_path}/Groups/{s.big_group}"
    return [
        Request(
            "PATCH",
            path,
            _json(
                {
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": m}]}],
                }
            ),
        )
        for m in s.non_members
    ]


def bulk_create(s: Subject) -> list[Request]:
    """Bulk requests of 1,000 POST /Users each, as a first synchronisation sends them."""
    requests = []
    for _ in range(4):
        people = s.people()
        operations = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{index}",
                "data": people.body(tag=f"{{n}}x{index}"),
            }
            for index in range(BULK_SIZE)
        ]
        body = {"schemas": [BULK_SCHEMA], "failOnErrors": 1, "Operations": operations}
        requests.append(Request("POST", f"{s.base_path}/Bulk", _json(body)))
    return requests


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    build: Callable[[Subject], list[Request]]
    # Resources each request creates (users/s for Bulk).
    per_request: int = 1
    # Reads repeat the same requests and are warmed up; writes change the data (and are not).
    writes: bool = False
    # Concurrent clients, if not --connections: a lone client shows latency without queueing.
    connections: int | None = None


CASES = [
    Case("get", "GET /Users/{id}", get_by_id),
    Case("eq", "filter userName eq", user_name_eq),
    Case("eq1", "filter userName eq, one client", user_name_eq, connections=1),
    Case("co", "filter name.familyName co", family_name_co),
    Case("sorted", "page of 100 sorted by familyName", sorted_page),
    Case("patch", "PATCH replace name.givenName", patch_given_name, writes=True),
    Case("member", "PATCH add 1 member to big group", add_member, writes=True),
    Case("post", "POST /Users", create_user, writes=True),
    Case(
        "bulk",
        "POST /Bulk, 1,000 users",
        bulk_create,
        per_request=BULK_SIZE,
        writes=True,
    ),
]
BY_NAME = {case.name: case for case in CASES}
