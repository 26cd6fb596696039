"""Property-based fuzzing of the SCIM API with hostile and malformed input (issue #8).

Hypothesis generates filters (RFC 7644 §3.4.2.2) with the query parameters of a search,
PATCH documents (§3.5.2) and Bulk requests (§3.7), valid and malformed, and sends them to
the app in process, as the identity system of one organisation. For every request:

* the server never answers 5xx;
* every error is an RFC 7644 §3.12 error: the Error schema, ``status`` the HTTP status as a
  string, a ``detail``, a ``scimType`` where RFC 7644 defines one (always on a 400), and
  the media type application/scim+json;
* a rejected request (4xx) changes nothing: the organisation's rows in ``resources`` and
  ``members`` and its audit log are as before;
* a Bulk request leaves exactly what its successful operations report: the resources
  before, plus those created, minus those deleted, and nothing else changed;
* the other organisation's data never changes.

Every request is built from placeholders (``@user0@``, ``@group1@``, ``@foreign0@`` ...)
that are replaced by the ids of the seeded resources when it is sent, so that generation
does not depend on the database. ``SCIM_FUZZ_EXAMPLES`` scales the number of examples and
``SCIM_FUZZ_RANDOM=1`` draws new ones on each run (by default the run is reproducible).
The number of cases each property ran, and the statuses seen, are printed by the last test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from litestar import Litestar
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.tables import audit_log, members, resources
from tests.conftest import (
    ENSAMKOMMANDE,
    ENTERPRISE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    LANDSTING,
    PATCH_SCHEMA,
    SCIM,
    SEARCH_SCHEMA,
    STATLIG,
    USER_SCHEMA,
    Organisations,
    api_client,
)

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

# RFC 7644 §3.12, table 9: each scimType and the status it goes with. (§3.7.4 answers a
# Bulk request with too many operations 413 tooMany.)
SCIM_TYPES = {
    "invalidFilter": {400},
    "tooMany": {400, 413},
    "uniqueness": {409},
    "mutability": {400},
    "invalidSyntax": {400},
    "invalidPath": {400},
    "noTarget": {400},
    "invalidValue": {400},
    "invalidVers": {400},
    "sensitive": {403},
    # RFC 9865 §4 (cursor-based pagination).
    "invalidCursor": {400},
    "expiredCursor": {400},
}
# What a bulk operation may report (RFC 7644 §3.7.3 and the statuses of §3.12).
BULK_STATUSES = {200, 201, 204, 400, 401, 403, 404, 409, 412, 413}

_SCALE = float(os.environ.get("SCIM_FUZZ_EXAMPLES", "1"))
_RANDOM = bool(os.environ.get("SCIM_FUZZ_RANDOM"))


def rarely(n: int) -> st.SearchStrategy[bool]:
    """True once in ``n`` draws, and False in the examples Hypothesis makes simplest."""
    return st.integers(0, n - 1).map(lambda i: i == n - 1)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * _SCALE)),
        deadline=None,
        derandomize=not _RANDOM,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# How many cases each property ran and what it answered, printed at the end.
CASES: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}


def count(prop: str, status: int) -> None:
    CASES[prop] += 1
    STATUSES.setdefault(prop, Counter())[status] += 1


# Every HTTP request the properties sent (seeding not included), by status.
REQUESTS: Counter[int] = Counter()


# -- the seeded world ----------------------------------------------------------------------

USER_NAMES = ("Åsa.Öberg", "karin.lind", "emil_nord")
GROUP_NAMES = ("Admins", "Alla anställda")
GRANTABLE = f"{STATLIG}:grundersattning"
# Most resources an organisation may hold before it is seeded again.
_MAX_RESOURCES = 40


@dataclass(frozen=True)
class Snapshot:
    """An organisation's stored state: its resources, memberships and audit records."""

    resources: dict[str, dict[str, Any]]
    members: frozenset[tuple[str, str, str | None]]
    audit: int

    def without(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        return {key: row for key, row in self.resources.items() if key not in ids}


async def snapshot(engine: AsyncEngine, tenant_id: int) -> Snapshot:
    async with engine.connect() as connection:
        rows = (
            (await connection.execute(select(resources).where(resources.c.tenant_id == tenant_id)))
            .mappings()
            .all()
        )
        memberships = (
            await connection.execute(
                select(members.c.group_id, members.c.member_id, members.c.display).where(
                    members.c.tenant_id == tenant_id
                )
            )
        ).all()
        audited = (
            await connection.execute(
                select(func.count())
                .select_from(audit_log)
                .where(audit_log.c.tenant_id == tenant_id)
            )
        ).scalar_one()
    return Snapshot(
        {row["id"]: dict(row) for row in rows},
        frozenset((m.group_id, m.member_id, m.display) for m in memberships),
        int(audited),
    )


def _user(user_name: str, hsa_id: str, **attributes: Any) -> dict[str, Any]:
    schemas = [USER_SCHEMA, ESERVICES, *attributes.pop("schemas", [])]
    extension = {"hsaId": hsa_id, **attributes.pop("extension", {})}
    return {"schemas": schemas, "userName": user_name, ESERVICES: extension, **attributes}


def _group(display_name: str, member_ids: list[str], **attributes: Any) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA, *attributes.pop("schemas", [])],
        "displayName": display_name,
        "members": [{"value": member_id} for member_id in member_ids],
        **attributes,
    }


@dataclass
class World:
    """Two organisations: Stockholm, which the requests are sent as, and Göteborg, whose
    resources Stockholm must never reach."""

    engine: AsyncEngine
    home: int
    away: int
    stockholm: httpx.AsyncClient
    goteborg: httpx.AsyncClient
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    seeded: int = 0
    seeding: bool = False

    async def counted(self, response: httpx.Response) -> None:
        if not self.seeding:
            REQUESTS[response.status_code] += 1

    @property
    def markers(self) -> dict[str, str]:
        found = {f"@user{i}@": value for i, value in enumerate(self.users)}
        found.update({f"@group{i}@": value for i, value in enumerate(self.groups)})
        found.update({f"@foreign{i}@": value for i, value in enumerate(self.foreign)})
        return found

    def resolve(self, value: Any, extra: dict[str, str] | None = None) -> Any:
        """``value`` with every placeholder replaced, wherever it occurs in a string."""
        markers = {**self.markers, **(extra or {})}
        if isinstance(value, str):
            if "@" not in value:
                return value
            return _MARKER.sub(lambda match: markers.get(match.group(0), match.group(0)), value)
        if isinstance(value, list):
            return [self.resolve(item, extra) for item in value]
        if isinstance(value, dict):
            return {
                self.resolve(key, extra): self.resolve(item, extra) for key, item in value.items()
            }
        return value

    async def _create(self, client: httpx.AsyncClient, endpoint: str, body: Any) -> str:
        response = await client.post(endpoint, json=body)
        assert response.status_code == 201, response.text
        created: str = response.json()["id"]
        return created

    async def seed(self) -> None:
        """Both organisations emptied and given a few users and groups."""
        self.seeding = True
        try:
            await self._seed()
        finally:
            self.seeding = False

    async def _seed(self) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(delete(members))
            await connection.execute(delete(resources))
        self.seeded += 1
        serial = self.seeded
        home = self.stockholm
        asa = await self._create(
            home,
            "/Users",
            _user(
                USER_NAMES[0],
                f"SE2120000142-FA{serial}",
                schemas=[ENTERPRISE],
                extension={"permissions": [{"value": GRANTABLE}]},
                name={"givenName": "Åsa", "familyName": "Öberg", "formatted": "Åsa Öberg"},
                displayName="Åsa Öberg",
                title="chef",
                emails=[
                    {"value": "asa@hemma.se", "type": "home"},
                    {"value": "asa@example.se", "type": "work", "primary": True},
                ],
                phoneNumbers=[{"value": "+46 8 123 45", "type": "work"}],
                addresses=[{"type": "work", "locality": "Stockholm", "country": "SE"}],
                **{ENTERPRISE: {"department": "IT", "employeeNumber": "1001"}},
            ),
        )
        karin = await self._create(
            home,
            "/Users",
            _user(
                USER_NAMES[1],
                f"SE2120000142-FK{serial}",
                displayName="Karin Lind",
                active=False,
                emails=[{"value": "KARIN.LIND@EXAMPLE.COM", "type": "work"}],
            ),
        )
        emil = await self._create(
            home, "/Users", _user(USER_NAMES[2], f"SE2120000142-FE{serial}", externalId="ext-1")
        )
        admins = await self._create(
            home,
            "/Groups",
            _group(
                GROUP_NAMES[0],
                [asa, karin],
                schemas=[ESERVICES_GROUP],
                **{
                    ESERVICES_GROUP: {
                        "permissions": [
                            {"value": f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare"}
                        ]
                    }
                },
            ),
        )
        everyone = await self._create(home, "/Groups", _group(GROUP_NAMES[1], [admins, emil]))
        self.users = [asa, karin, emil]
        self.groups = [admins, everyone]
        away = self.goteborg
        other = await self._create(
            away, "/Users", _user(USER_NAMES[1], f"SE2120001355-FK{serial}", title="chef")
        )
        self.foreign = [other, await self._create(away, "/Groups", _group("Admins", [other]))]

    async def ready(self) -> None:
        """Seeded again when a seeded resource is gone or too many were created."""
        present = await snapshot(self.engine, self.home)
        wanted = set(self.users) | set(self.groups)
        away = await snapshot(self.engine, self.away)
        if (
            not wanted
            or not wanted <= present.resources.keys()
            or len(present.resources) > _MAX_RESOURCES
            or not set(self.foreign) <= away.resources.keys()
        ):
            await self.seed()

    async def states(self) -> tuple[Snapshot, Snapshot]:
        return await snapshot(self.engine, self.home), await snapshot(self.engine, self.away)


_MARKER = re.compile(r"@[a-z]+\d*@")


@pytest.fixture
async def world(
    app: Litestar, engine: AsyncEngine, organisations: Organisations
) -> AsyncIterator[World]:
    async with (
        api_client(app, organisations.stockholm.token) as stockholm,
        api_client(app, organisations.goteborg.token) as goteborg,
    ):
        world = World(
            engine, organisations.stockholm.id, organisations.goteborg.id, stockholm, goteborg
        )
        for client in (stockholm, goteborg):
            client.event_hooks["response"].append(world.counted)
        await world.seed()
        yield world


# -- what every response must be -------------------------------------------------------------


def check_error_body(body: Any, status: int) -> None:
    """An RFC 7644 §3.12 error, as a response or a bulk operation's ``response``."""
    assert isinstance(body, dict), body
    assert body.get("schemas") == [ERROR], body
    assert body.get("status") == str(status), body
    detail = body.get("detail")
    assert isinstance(detail, str) and detail.strip(), body
    scim_type = body.get("scimType")
    if status == 400:
        assert scim_type is not None, f"a 400 without scimType: {body}"
    if scim_type is not None:
        assert scim_type in SCIM_TYPES, body
        assert status in SCIM_TYPES[scim_type], f"scimType {scim_type} with {status}: {body}"
    assert set(body) <= {"schemas", "status", "scimType", "detail"}, body


def check_response(response: httpx.Response) -> None:
    """Never a 5xx; an error is a SCIM error in application/scim+json."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:2000]}"
    if status >= 400:
        assert response.headers.get("content-type", "").startswith(SCIM), response.headers
        check_error_body(response.json(), status)
    elif response.content:
        assert response.headers.get("content-type", "").startswith(SCIM), response.headers


def scim_type(response: httpx.Response) -> str | None:
    value = response.json().get("scimType")
    return value if isinstance(value, str) else None


def assert_unchanged(before: Snapshot, after: Snapshot, what: str) -> None:
    assert after.resources.keys() == before.resources.keys(), what
    for key, row in before.resources.items():
        assert after.resources[key] == row, f"{what}: {key} changed"
    assert after.members == before.members, what
    assert after.audit == before.audit, what


# -- filters ---------------------------------------------------------------------------------

# Lone surrogates cannot be sent as UTF-8 (they are sent as JSON escapes, see HOSTILE).
_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_CHARS = st.characters(exclude_categories=_SURROGATES, exclude_characters="\x00")
_SAMPLE_TEXT = [
    "",
    " ",
    "a",
    "Å",
    "åsa",
    "ÄÖ",
    "ö",
    "Örjan",
    'say "hi"',
    'a"b',
    "back\\slash",
    "\\",
    '"',
    "%",
    "_",
    "*",
    "x%_y",
    "日本",
    "🙂",
    "work",
    "home",
    "example.se",
    "asa@example.se",
    "KARIN",
    "chef",
    "IT",
    "User",
    "Group",
    "direct",
    "null",
    "true",
    "and",
    "or not",
    "Åsa.Öberg",
    "Admins",
    "alla anställda",
    "SE2120000142-FA1",
    GRANTABLE,
    STATLIG,
    "@user0@",
    "@group0@",
    "@foreign0@",
    "\t\n",
    "é",
    "e\u0301",
    "x" * 300,
]
TEXT = st.one_of(st.sampled_from(_SAMPLE_TEXT), st.text(_CHARS, max_size=12))


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


STRINGS = TEXT.map(_quoted)
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])


def _rfc3339(moment: datetime, fraction: bool) -> str:
    text = moment.isoformat(timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z")


DATES = st.builds(
    _rfc3339,
    st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=_ZONES),
    st.booleans(),
).map(_quoted)
STRING_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
ORDER_OPS = ("eq", "ne", "gt", "ge", "lt", "le")


def _case(text: str, how: int) -> str:
    return (text, text.upper(), text.lower(), text.capitalize())[how]


SPELLING = st.integers(0, 3)

U = USER_SCHEMA + ":"
E = ESERVICES + ":"
EG = ESERVICES_GROUP + ":"
ENT = ENTERPRISE + ":"

# The attributes of each resource type by type, as filters name them.
USER_STRINGS = (
    "userName",
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "externalId",
    "id",
    "profileUrl",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "name.middleName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.display",
    "phoneNumbers.value",
    "phoneNumbers.type",
    "addresses.locality",
    "addresses.country",
    "addresses.type",
    "ims.value",
    "roles.value",
    "entitlements.value",
    "entitlements.type",
    "groups.value",
    "groups.display",
    "groups.type",
    "meta.resourceType",
    f"{U}userName",
    f"{U}name.familyName",
    f"{E}hsaId",
    f"{E}permissions.value",
    f"{E}permissions.service",
    f"{E}permissions.display",
    f"{E}effectivePermissions.value",
    f"{E}effectivePermissions.source",
    f"{E}effectivePermissions.service",
    f"{ENT}department",
    f"{ENT}employeeNumber",
    f"{ENT}organization",
    f"{ENT}manager.value",
)
USER_BOOLEANS = ("active", "emails.primary", "phoneNumbers.primary", "addresses.primary")
DATE_ATTRIBUTES = ("meta.created", "meta.lastModified")
USER_COMPLEX = (
    "name",
    "emails",
    "phoneNumbers",
    "addresses",
    "groups",
    "meta",
    "entitlements",
    f"{E}permissions",
    f"{E}effectivePermissions",
    f"{ENT}manager",
)
# Multi-valued attributes with the sub-attributes a value filter on them may name.
USER_VALUE_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "emails": (("value", "type", "display"), ("primary",)),
    "phoneNumbers": (("value", "type"), ("primary",)),
    "addresses": (("locality", "type", "country"), ("primary",)),
    "groups": (("value", "display", "type"), ()),
    "entitlements": (("value", "type"), ()),
    f"{E}permissions": (("value", "service", "display"), ()),
    f"{E}effectivePermissions": (("value", "service", "source"), ()),
}
GROUP_STRINGS = (
    "displayName",
    "externalId",
    "id",
    "members",
    "members.value",
    "members.display",
    "members.type",
    "meta.resourceType",
    f"{GROUP_SCHEMA}:displayName",
    f"{EG}permissions.value",
    f"{EG}permissions.service",
    f"{EG}permissions.display",
)
GROUP_COMPLEX = ("members", "meta", f"{EG}permissions")
GROUP_VALUE_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "members": (("value", "display", "type"), ()),
    f"{EG}permissions": (("value", "service", "display"), ()),
}


def _comparison(
    attributes: tuple[str, ...], ops: tuple[str, ...], values: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, sa, op, so, v: f"{_case(a, sa)} {_case(op, so)} {v}",
        st.sampled_from(attributes),
        SPELLING,
        st.sampled_from(ops),
        SPELLING,
        values,
    )


# scim2-models checks what ``eq``, ``ne``, ``gt``... compare an e-mail address or a reference
# with (only ``co``, ``sw`` and ``ew`` take any text): those attributes get values of their type.
EMAIL_VALUES = st.sampled_from(
    ["asa@example.se", "KARIN.LIND@EXAMPLE.COM", "åsa@exempel.se", "x@y.se", "a+b@kommun.se"]
).map(_quoted)
URI_VALUES = st.sampled_from(["https://example.se/å", "urn:x:y", "http://a/b?c=d"]).map(_quoted)
TYPED: dict[str, st.SearchStrategy[str]] = {
    "emails": EMAIL_VALUES,
    "emails.value": EMAIL_VALUES,
    "value": EMAIL_VALUES,  # within emails[...]
    "profileUrl": URI_VALUES,
}


def _strings(attributes: tuple[str, ...], typed: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Comparisons of text attributes with text (of the attribute's type where it has one)."""
    free = tuple(a for a in attributes if a not in typed)
    checked = tuple(a for a in attributes if a in typed)
    options = [
        _comparison(free, STRING_OPS, STRINGS),
        _comparison(attributes, ("co", "sw", "ew"), STRINGS),
    ]
    options += [_comparison((a,), ORDER_OPS, TYPED[a]) for a in checked]
    return st.one_of(options)


def _atoms(
    strings: tuple[str, ...],
    booleans: tuple[str, ...],
    complex_: tuple[str, ...],
    value_paths: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> st.SearchStrategy[str]:
    """Comparisons that are valid for one resource type: each value of the attribute's type."""
    plain: list[st.SearchStrategy[str]] = [
        _strings(strings, tuple(TYPED)),
        _comparison(strings, ("eq", "ne"), st.just("null")),
        _comparison(DATE_ATTRIBUTES, ORDER_OPS, DATES),
        _comparison(
            ("meta.version",), ("eq", "ne"), st.sampled_from(['"W/\\"1\\""', '"W/\\"2\\""'])
        ),
        st.builds(
            lambda a, s, p: f"{_case(a, s)} {p}",
            st.sampled_from(strings + booleans + complex_ + DATE_ATTRIBUTES),
            SPELLING,
            st.sampled_from(["pr", "PR", "Pr"]),
        ),
    ]
    if booleans:
        plain.append(
            _comparison(booleans, ("eq", "ne"), st.sampled_from(["true", "false", "null", "TRUE"]))
        )
    atoms = st.one_of(plain)

    def value_path(name: str) -> st.SearchStrategy[str]:
        texts, flags = value_paths[name]
        typed = ("value",) if name == "emails" else ()
        inner = [_strings(texts, typed), _comparison(texts, ("eq",), st.just("null"))]
        inner.append(st.sampled_from(texts).map(lambda a: f"{a} pr"))
        if flags:
            inner.append(_comparison(flags, ("eq", "ne"), st.sampled_from(["true", "false"])))
        return _logic(st.one_of(inner), 3).map(lambda f: f"{name}[{f}]")

    return st.one_of(atoms, st.sampled_from(sorted(value_paths)).flatmap(value_path))


def _logic(atoms: st.SearchStrategy[str], max_leaves: int) -> st.SearchStrategy[str]:
    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        operators = st.builds(_case, st.sampled_from(["and", "or"]), SPELLING)
        return st.one_of(
            st.builds(lambda a, op, b: f"({a}) {op} ({b})", children, operators, children),
            st.builds(lambda a, op, b: f"{a} {op} {b}", children, operators, children),
            st.builds(lambda n, a: f"{_case('not', n)} ({a})", SPELLING, children),
            st.builds(lambda a: f"( {a} )", children),
        )

    return st.recursive(atoms, extend, max_leaves=max_leaves)


USER_FILTERS = _logic(_atoms(USER_STRINGS, USER_BOOLEANS, USER_COMPLEX, USER_VALUE_PATHS), 6)
GROUP_FILTERS = _logic(_atoms(GROUP_STRINGS, (), GROUP_COMPLEX, GROUP_VALUE_PATHS), 6)
ROOT_FILTERS = _logic(
    st.one_of(
        _atoms(USER_STRINGS, USER_BOOLEANS, USER_COMPLEX, USER_VALUE_PATHS),
        _atoms(GROUP_STRINGS, (), GROUP_COMPLEX, GROUP_VALUE_PATHS),
    ),
    4,
)
VALID_FILTERS = {"Users": USER_FILTERS, "Groups": GROUP_FILTERS, "": ROOT_FILTERS}

# Comparisons that are well formed but may be refused for their types or names.
_DOUBTFUL = st.one_of(
    _comparison(
        USER_STRINGS + USER_BOOLEANS + DATE_ATTRIBUTES + GROUP_STRINGS + ("meta.version",),
        (*STRING_OPS, "pr", "xx", "EQ"),
        st.one_of(
            STRINGS,
            DATES,
            st.sampled_from(
                ["1", "-0", "1.5e3", "1e999", "99999999999999999999", "true", "false", "null"]
            ),
            st.sampled_from(['"notadate"', '"2024-13-45T00:00:00Z"', '"2024-01-01"', "x", "''"]),
        ),
    ),
    st.sampled_from(
        [
            'foo eq "x"',
            'name.foo eq "x"',
            'emails[foo eq "x"]',
            'emails[value[value eq "x"]]',
            'emails[type eq "work" and phoneNumbers[type eq "work"]]',
            'userName[value eq "x"]',
            'name[givenName eq "Åsa"]',
            "password pr",
            'password eq "x"',
            "meta.location pr",
            'meta.location eq "x"',
            'meta.version gt "W/\\"1\\""',
            'urn:example:params:scim:schemas:unknown:1.0:User:userName eq "x"',
            f'{E}hsaId[value eq "x"]',
            f"{E}effectivePermissions.permission pr",
            'members[value eq "x"].display eq "y"',
            'emails[type eq "work"].value eq "x"',
            'x509Certificates.value eq "AAAA"',
            'x509Certificates.value co "!!"',
            'emails.value eq "a\\u0000b"',
            "not (" * 40 + "title pr" + ")" * 40,
            "(" * 33 + "title pr" + ")" * 33,
            " or ".join(["title pr"] * 1001),
        ]
    ),
)
_NOISE = '()[]" \\andortpreqnecoswewgtgeltlenull.:_-%@0éÅ\u0000\t'


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A filter broken at random: characters deleted, inserted or swapped, or cut short."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "swap", "truncate", "double"]))
        position = draw(st.integers(0, len(text)))
        if kind == "delete" and text:
            position = min(position, len(text) - 1)
            text = text[:position] + text[position + 1 :]
        elif kind == "insert":
            text = text[:position] + draw(st.sampled_from(_NOISE)) + text[position:]
        elif kind == "swap" and len(text) > 1:
            position = min(position, len(text) - 2)
            text = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
        elif kind == "truncate":
            text = text[:position]
        else:
            text = text[:position] + text[position : position + 5] + text[position:]
    return text


def malformed_filters(endpoint: str) -> st.SearchStrategy[str]:
    return st.one_of(
        _mutated(VALID_FILTERS[endpoint]),
        _DOUBTFUL,
        _logic(st.one_of(_DOUBTFUL, VALID_FILTERS[endpoint]), 3),
        st.text(st.characters(exclude_categories=_SURROGATES), max_size=30),
        st.text(st.sampled_from(_NOISE), max_size=30),
    )


SORTABLE = {
    "Users": (
        "userName",
        "name.familyName",
        "meta.lastModified",
        "emails",
        "emails.type",
        "title",
        f"{E}hsaId",
        f"{E}effectivePermissions.value",
        "groups.display",
        "meta.version",
        "active",
        "id",
    ),
    "Groups": (
        "displayName",
        "members",
        "members.display",
        "meta.created",
        "externalId",
        f"{EG}permissions.value",
        "id",
    ),
    "": ("userName", "displayName", "meta.lastModified", "id"),
}


@st.composite
def search_params(draw: st.DrawFn, endpoint: str) -> tuple[dict[str, str], bool]:
    """The other query parameters of a search, and whether they are all valid."""
    params: dict[str, str] = {}
    valid = True
    if draw(st.booleans()):
        if not draw(rarely(4)):
            params["sortBy"] = draw(st.sampled_from(SORTABLE[endpoint]))
        else:
            valid = False
            params["sortBy"] = draw(
                st.sampled_from(
                    [
                        "foo",
                        'emails[type eq "x"]',
                        "emails.",
                        "",
                        "meta.location",
                        "meta",
                        "password",
                        "members[",
                        "urn:x:y",
                    ]
                )
            )
    if draw(st.booleans()):
        if not draw(rarely(4)):
            params["sortOrder"] = draw(st.sampled_from(["ascending", "descending"]))
        else:
            valid = False
            params["sortOrder"] = draw(st.sampled_from(["sideways", "", "ASC", "desc"]))
    for name in ("startIndex", "count"):
        if draw(st.booleans()):
            if not draw(rarely(4)):
                params[name] = str(draw(st.one_of(st.integers(-5, 300), st.just(2**53))))
            else:
                valid = False
                params[name] = draw(
                    st.sampled_from(
                        [
                            "abc",
                            "",
                            "1.5",
                            "1e3",
                            " 2",
                            "0x10",
                            "99999999999999999999",
                            str(2**63),
                            str(2**31),
                            "-99999999999999999999",
                            "٣",
                        ]
                    )
                )
    if draw(rarely(10)):
        valid = False
        params["cursor"] = draw(
            st.sampled_from(["", "abc", "!!!", "eyJ4IjoxfQ", "e30", "AAAA" * 100, "ä"])
        )
    if draw(st.booleans()):
        name = draw(st.sampled_from(["attributes", "excludedAttributes"]))
        if not draw(rarely(4)):
            params[name] = ",".join(
                draw(st.lists(st.sampled_from(SORTABLE[endpoint] + ("meta", "foo")), max_size=3))
            )
        else:
            valid = False
            params[name] = draw(
                st.sampled_from(["emails[", ",,", "a b", 'emails[type eq "w"]', ":"])
            )
    return params, valid


@st.composite
def searches(draw: st.DrawFn) -> dict[str, Any]:
    endpoint = draw(st.sampled_from(["Users", "Groups", ""]))
    well_formed = not draw(rarely(3))
    filter_ = draw(VALID_FILTERS[endpoint] if well_formed else malformed_filters(endpoint))
    params, valid = draw(search_params(endpoint))
    return {
        "endpoint": endpoint,
        "filter": filter_,
        "well_formed": well_formed,
        "params": params,
        "valid_params": valid,
        "post": draw(st.booleans()),
    }


def _as_json(params: dict[str, str]) -> dict[str, Any]:
    """Query parameters as a SearchRequest carries them: numbers as numbers, lists as lists."""
    body: dict[str, Any] = {"schemas": [SEARCH_SCHEMA]}
    for name, value in params.items():
        if name in ("startIndex", "count"):
            try:
                body[name] = int(value)
            except ValueError:
                body[name] = value
        elif name in ("attributes", "excludedAttributes"):
            body[name] = [part for part in value.split(",") if part]
        else:
            body[name] = value
    return body


@fuzz_settings(300)
@given(search=searches())
async def test_filters_and_search_parameters(world: World, search: dict[str, Any]) -> None:
    await world.ready()
    before, away_before = await world.states()
    endpoint = search["endpoint"]
    filter_ = world.resolve(search["filter"])
    path = f"/{endpoint}" if endpoint else ""
    note(f"filter={filter_!r} params={search['params']!r} post={search['post']}")
    if search["post"]:
        body = _as_json(search["params"]) | {"filter": filter_}
        response = await world.stockholm.post(f"{path}/.search", json=body)
    else:
        response = await world.stockholm.get(
            path or "/", params=search["params"] | {"filter": filter_}
        )
    note(f"{response.status_code} {response.text[:500]}")
    count("filters", response.status_code)
    check_response(response)
    if search["well_formed"] and search["valid_params"]:
        assert response.status_code == 200, f"a valid filter was refused: {response.text}"
    if response.status_code == 200:
        page = response.json()
        assert page["schemas"] == [LIST_RESPONSE], page
        found = page["Resources"]
        assert page["itemsPerPage"] == len(found) <= page["totalResults"], page
        # Only the caller's organisation's resources, ever.
        assert {item["id"] for item in found} <= before.resources.keys(), page
    else:
        assert response.status_code == 400, response.text
        if search["valid_params"]:
            assert scim_type(response) == "invalidFilter", response.text
        else:
            assert scim_type(response) in (
                "invalidFilter",
                "invalidValue",
                "invalidPath",
                "invalidSyntax",
                "invalidCursor",
            ), response.text
    after, away_after = await world.states()
    assert_unchanged(before, after, "a search changed the organisation")
    assert_unchanged(away_before, away_after, "a search changed another organisation")


# -- PATCH -----------------------------------------------------------------------------------

MISSING = object()

# Text no database stores as it is: U+0000 (PostgreSQL refuses it in text and jsonb) and lone
# surrogates (JSON escapes that are no Unicode), and characters that are easy to mishandle.
HOSTILE = st.sampled_from(["a\x00b", "\x00", "\ud800", "x\udfffy", "\u2028", "\ufeff", "\x7f"])
WRITTEN = rarely(4).flatmap(lambda hostile: HOSTILE if hostile else TEXT)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    WRITTEN,
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["value", "type", "primary", "display", "x", ""]), children, max_size=3
        ),
    ),
    max_leaves=6,
)
HUGE = st.sampled_from(["x" * 256, "x" * 1000, "å" * 5000] * 5 + ["x" * 300_000])
HSA_IDS = st.sampled_from(
    [
        "SE2120000142-NY1",
        "se2120000142-ny2",
        "SE2120000142-FA1",
        "SE2120000142-FK1",
        "SE2120001355-FK1",
        "SE212-X",
        "",
        "SE2120000142-" + "A" * 30,
    ]
)
PERMISSION_VALUES = st.sampled_from(
    [
        GRANTABLE,
        f"{STATLIG}:asylsokande-i-forskola",
        f"{LANDSTING}:x",
        f"{STATLIG}:nope",
        "nocolon",
        ":",
        f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare",
    ]
)
PERMISSIONS = st.lists(st.builds(lambda v: {"value": v}, PERMISSION_VALUES), max_size=3)
EMAIL = st.builds(
    lambda value, type_, primary: {"value": value, "type": type_, "primary": primary},
    st.sampled_from(["a@example.se", "Å@exempel.se", "not an email", ""]),
    st.sampled_from(["work", "home", "other"]),
    st.booleans(),
)
USER_NAMES_ANY = st.one_of(
    st.sampled_from([*USER_NAMES, "KARIN.LIND", "ny.person", "", "   "]), WRITTEN, HUGE
)
MEMBER_REFS = st.sampled_from(
    [
        "@user0@",
        "@user1@",
        "@user2@",
        "@group0@",
        "@group1@",
        "@foreign0@",
        "@foreign1@",
        "@self@",
        str(uuid.UUID(int=7)),
        "",
        "bulkId:a",
    ]
)
MEMBER_VALUES = st.lists(
    st.one_of(
        st.builds(lambda ref: {"value": ref}, MEMBER_REFS),
        st.builds(
            lambda ref, d: {"value": ref, "display": d}, MEMBER_REFS, st.one_of(WRITTEN, HUGE)
        ),
        ANY_JSON,
    ),
    max_size=3,
)
# A path and the values that fit it (besides any value at all).
USER_PATHS: dict[str, st.SearchStrategy[Any]] = {
    "displayName": WRITTEN,
    "nickName": WRITTEN,
    "title": st.one_of(WRITTEN, HUGE),
    "userName": USER_NAMES_ANY,
    "name.givenName": WRITTEN,
    "name.familyName": WRITTEN,
    "name": st.fixed_dictionaries({}, optional={"givenName": WRITTEN, "familyName": WRITTEN}),
    "emails": st.lists(EMAIL, max_size=3),
    'emails[type eq "work"].value': st.sampled_from(["ny@example.se", ""]),
    'emails[type eq "work"]': EMAIL,
    'emails[value co "hemma"].primary': st.booleans(),
    'emails[type eq "home" or primary eq true]': EMAIL,
    "phoneNumbers": st.lists(
        st.builds(lambda v: {"value": v, "type": "work"}, WRITTEN), max_size=2
    ),
    'addresses[type eq "work"].locality': WRITTEN,
    "active": st.one_of(st.booleans(), st.sampled_from(["True", "false", "perhaps"])),
    "externalId": st.one_of(WRITTEN, HUGE),
    "preferredLanguage": st.sampled_from(["sv-SE", "en", "xx"]),
    f"{U}name.familyName": WRITTEN,
    f"{E}hsaId": HSA_IDS,
    f"{E}permissions": PERMISSIONS,
    f'{E}permissions[value eq "{GRANTABLE}"]': st.builds(lambda v: {"value": v}, PERMISSION_VALUES),
    f"{E}permissions.value": PERMISSION_VALUES,
    ESERVICES: st.fixed_dictionaries({}, optional={"hsaId": HSA_IDS, "permissions": PERMISSIONS}),
    f"{ENT}department": WRITTEN,
    f"{ENT}manager": st.builds(lambda ref: {"value": ref}, MEMBER_REFS),
}
GROUP_PATHS: dict[str, st.SearchStrategy[Any]] = {
    "displayName": st.one_of(WRITTEN, HUGE),
    "externalId": WRITTEN,
    "members": MEMBER_VALUES,
    "Members": MEMBER_VALUES,
    f"{GROUP_SCHEMA}:members": MEMBER_VALUES,
    'members[value eq "@user0@"]': st.none(),
    'members[value eq "@foreign0@"]': st.none(),
    'members[type eq "User"]': st.none(),
    'members[display co "a"]': st.none(),
    'members[value eq "@user1@" or value eq "@group0@"]': st.none(),
    "members.value": MEMBER_REFS,
    "members[": st.none(),
    'members[foo eq "x"]': st.none(),
    f"{EG}permissions": PERMISSIONS,
    ESERVICES_GROUP: st.fixed_dictionaries({}, optional={"permissions": PERMISSIONS}),
}
BAD_PATHS = st.sampled_from(
    [
        "id",
        "meta",
        "meta.version",
        "meta.lastModified",
        "groups",
        "entitlements",
        "schemas",
        f"{E}effectivePermissions",
        "shoeSize",
        "name.middleInitial",
        'emails[type eq "work"',
        "emails[]",
        "",
        " ",
        "[",
        "]",
        'emails[type eq "work"].foo',
        "password",
        "urn:x:y:z:attr",
        f"{ENT}favouriteColour",
        'emails[value[value eq "x"]]',
        "name..givenName",
        ".",
        "emails.0",
        'members[value eq "x"].value',
        "members.display",
    ]
)
GOOD_OPS = st.sampled_from(["add", "replace", "remove", "Add", "REPLACE", "Remove"])
BAD_OPS = st.sampled_from(["move", "copy", "test", "", " add", None, 5, True, ["add"]])


@st.composite
def patch_operations(draw: st.DrawFn, kind: str) -> Any:
    paths = USER_PATHS if kind == "Users" else GROUP_PATHS
    op: Any = draw(BAD_OPS if draw(rarely(12)) else GOOD_OPS)
    choice = draw(st.integers(0, 9))
    if str(op).lower() == "remove" and choice in (7, 8) and not draw(rarely(5)):
        choice = 0
    path: Any
    if choice <= 6:
        path = draw(st.sampled_from(sorted(paths)))
        fitting = paths[path]
    elif choice == 9:
        path = draw(st.one_of(BAD_PATHS, st.text(_CHARS, max_size=15), st.sampled_from([5, None])))
        fitting = ANY_JSON
    else:
        # No path: the value holds the attributes (RFC 7644 §3.5.2.1 and §3.5.2.3).
        path = MISSING
        simple = sorted(k for k in paths if "[" not in k)
        fitting = st.lists(st.sampled_from(simple), min_size=1, max_size=3, unique=True).flatmap(
            lambda keys: st.fixed_dictionaries({key: paths[key] for key in keys})
        )
        if draw(rarely(6)):
            fitting = st.dictionaries(BAD_PATHS, ANY_JSON, min_size=1, max_size=2)
    if str(op).lower() == "remove" and not draw(rarely(6)):
        fitting = st.just(MISSING)
    value: Any = draw(
        st.just(MISSING) if draw(rarely(10)) else ANY_JSON if draw(rarely(6)) else fitting
    )
    operation: dict[str, Any] = {}
    if op is not None or draw(st.booleans()):
        operation["op"] = op
    if path is not MISSING:
        operation["path"] = path
    if value is not MISSING:
        operation["value"] = value
    if draw(rarely(25)):
        operation[draw(st.sampled_from(["from", "extra", "Op"]))] = draw(ANY_JSON)
    if draw(rarely(30)):
        return draw(st.one_of(ANY_JSON, st.just([operation])))
    return operation


@st.composite
def patch_documents(draw: st.DrawFn, kind: str) -> Any:
    operations = draw(st.lists(patch_operations(kind), min_size=1, max_size=3))
    shape = draw(st.integers(0, 24))  # 0-19: well formed
    if shape == 24:
        return {"Operations": operations}
    if shape == 23:
        return {
            "schemas": draw(st.sampled_from([[], ["urn:x"], PATCH_SCHEMA, None])),
            "Operations": operations,
        }
    if shape == 22:
        return {
            "schemas": [PATCH_SCHEMA],
            "Operations": draw(st.sampled_from([[], None, "x", {"op": "add"}, 5])),
        }
    if shape == 21:
        return {"schemas": [PATCH_SCHEMA]}
    if shape == 20:
        return draw(
            st.sampled_from(
                [
                    b"",
                    b"{",
                    b"[]",
                    b'"x"',
                    b"null",
                    b"\xff\xfe",
                    b'{"schemas": ["' + PATCH_SCHEMA.encode() + b'"], "Op',
                ]
            )
        )
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


OWN = {"Users": ["@user0@", "@user1@", "@user2@"], "Groups": ["@group0@", "@group1@"]}
# Out of reach: another organisation's, of the other type, or none at all.
ELSEWHERE = {
    "Users": ["@foreign0@", "@group0@", str(uuid.UUID(int=9)), "x", "bulkId:a"],
    "Groups": ["@foreign1@", "@user0@", str(uuid.UUID(int=9))],
}


def targets(kind: str) -> st.SearchStrategy[str]:
    return rarely(5).flatmap(lambda rare: st.sampled_from(ELSEWHERE[kind] if rare else OWN[kind]))


IF_MATCH = rarely(3).flatmap(
    lambda given: (
        st.sampled_from(
            ["@version@", "*", 'W/"1"', '"1"', 'W/"999"', "garbage", "", 'W/"1", W/"2"']
        )
        if given
        else st.none()
    )
)


@st.composite
def patches(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Users", "Groups"]))
    return {
        "kind": kind,
        "target": draw(targets(kind)),
        "body": draw(patch_documents(kind)),
        "if_match": draw(IF_MATCH),
        "content_type": draw(
            st.sampled_from(["application/json", "text/plain", ""])
            if draw(rarely(20))
            else st.just(SCIM)
        ),
        "query": draw(
            st.sampled_from(
                [
                    {},
                    {},
                    {"attributes": "displayName"},
                    {"excludedAttributes": "members"},
                    {"attributes": "["},
                ]
            )
        ),
    }


def _version(state: Snapshot, resource_id: str) -> str:
    row = state.resources.get(resource_id)
    return f'W/"{row["version"]}"' if row else 'W/"0"'


@fuzz_settings(300)
@given(case=patches())
async def test_patch_documents(world: World, case: dict[str, Any]) -> None:
    await world.ready()
    before, away_before = await world.states()
    target = world.resolve(case["target"])
    extra = {"@self@": target, "@version@": _version(before, target)}
    headers = {"Content-Type": case["content_type"]}
    if case["if_match"] is not None:
        headers["If-Match"] = world.resolve(case["if_match"], extra)
    body = case["body"]
    content = body if isinstance(body, bytes) else json.dumps(world.resolve(body, extra)).encode()
    response = await world.stockholm.request(
        "PATCH",
        f"/{case['kind']}/{target}",
        content=content,
        headers=headers,
        params=case["query"],
    )
    note(f"{response.status_code} {response.text[:500]}")
    count("patch", response.status_code)
    check_response(response)
    after, away_after = await world.states()
    assert_unchanged(away_before, away_after, "a PATCH changed another organisation")
    mine = before.resources.get(target)
    if mine is None or mine["resource_type"] != case["kind"][:-1]:
        assert response.status_code >= 400, "a PATCH reached a resource out of its reach"
    if response.status_code >= 400:
        assert_unchanged(before, after, "a refused PATCH changed the organisation")
        return
    # A success: only the target changed, and it is as the response says.
    assert after.without({target}) == before.without({target})
    row = after.resources[target]
    assert response.headers["ETag"] == f'W/"{row["version"]}"'
    unchanged = {m for m in before.members if m[0] != target}
    assert {m for m in after.members if m[0] != target} == unchanged
    if response.status_code == 200:
        document = response.json()
        assert document["id"] == target
        if "meta" in document:
            assert document["meta"]["version"] == response.headers["ETag"]
    else:
        assert response.status_code == 204 and not response.content
    read = await world.stockholm.get(f"/{case['kind']}/{target}")
    assert read.status_code == 200, read.text


# -- Bulk ------------------------------------------------------------------------------------

BULK_IDS = st.sampled_from(["a", "b", "c", "d"])
BULK_ID_VALUES = rarely(8).flatmap(
    lambda odd: st.sampled_from(["", "a b", "bulkId:a", "ä", 5, None, True]) if odd else BULK_IDS
)
REFS = st.sampled_from(["bulkId:a", "bulkId:b", "bulkId:c", "bulkId:d", "bulkId:zz"])
NEW_USER_NAMES = st.sampled_from(["ny1", "ny2", "NY1", "ny3", *USER_NAMES, "", "ny\x00"])
NEW_HSA_IDS = st.sampled_from(
    [
        "SE2120000142-NY1",
        "SE2120000142-NY2",
        "SE2120000142-NY3",
        "SE2120000142-FA1",
        "SE2120001355-FK1",
        "bad",
    ]
)
RESOURCE_REFS = st.one_of(MEMBER_REFS, REFS)


@st.composite
def bulk_data(draw: st.DrawFn, method: str, kind: str) -> Any:
    if draw(rarely(10)):
        return draw(ANY_JSON)
    if method == "PATCH":
        document = draw(patch_documents(kind))
        # A raw body has no place in a Bulk operation: its text stands for it.
        return document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    if method == "DELETE":
        return draw(st.sampled_from([MISSING, MISSING, None, {}]))
    if kind == "Users":
        body = _user(draw(NEW_USER_NAMES), draw(NEW_HSA_IDS))
        if draw(st.booleans()):
            body[ENTERPRISE] = {"manager": {"value": draw(RESOURCE_REFS)}}
            body["schemas"].append(ENTERPRISE)
        if draw(rarely(4)):
            body[ESERVICES]["permissions"] = draw(PERMISSIONS)
        if draw(rarely(5)):
            body[draw(st.sampled_from(["title", "shoeSize", "id", "groups", "active"]))] = draw(
                ANY_JSON
            )
        return body
    return _group(
        draw(st.sampled_from(["Ny grupp", "Admins", "", "Grupp bulkId:a"])),
        draw(st.lists(RESOURCE_REFS, max_size=3)),
    )


@st.composite
def bulk_operations(draw: st.DrawFn) -> Any:
    method: Any = draw(
        st.sampled_from(["post", "GET", "", "PUTT", 5, None])
        if draw(rarely(10))
        else st.sampled_from(["POST", "POST", "PUT", "PATCH", "DELETE"])
    )
    kind = draw(st.sampled_from(["Users", "Groups"]))
    target = draw(REFS if draw(rarely(4)) else targets(kind))
    path: Any = f"/{kind}" if method in ("POST", "post") else f"/{kind}/{target}"
    if draw(rarely(10)):
        path = draw(
            st.sampled_from(
                [
                    "/Foo",
                    f"{kind}",
                    "",
                    f"/{kind}/a/b",
                    "/Bulk",
                    "/",
                    f"/{kind}/bulkId:a/x",
                    5,
                    None,
                    f"/{kind}/",
                    "/Me",
                ]
            )
        )
    operation: dict[str, Any] = {}
    if method is not None:
        operation["method"] = method
    if path is not None:
        operation["path"] = path
    bulk_id = draw(BULK_ID_VALUES)
    if bulk_id is not None and (method in ("POST", "post") or draw(rarely(4))):
        operation["bulkId"] = bulk_id
    data = draw(bulk_data(str(method).upper(), kind))
    if data is not MISSING:
        operation["data"] = data
    version = draw(IF_MATCH)
    if version is not None:
        operation["version"] = version
    if draw(rarely(20)):
        return draw(ANY_JSON)
    return operation


@st.composite
def bulk_requests(draw: st.DrawFn) -> Any:
    operations = draw(st.lists(bulk_operations(), min_size=1, max_size=6))
    if not draw(rarely(5)):
        # Mostly distinct bulkIds, else the whole request is refused.
        seen: set[Any] = set()
        for number, operation in enumerate(operations):
            if isinstance(operation, dict) and operation.get("bulkId") in seen:
                operation["bulkId"] = f"{operation['bulkId']}{number}"
            if isinstance(operation, dict) and isinstance(operation.get("bulkId"), str):
                seen.add(operation["bulkId"])
    body: dict[str, Any] = {"schemas": [BULK], "Operations": operations}
    shape = draw(st.integers(0, 19))  # 0-15: well formed
    if shape == 19:
        body["schemas"] = draw(st.sampled_from([[], ["urn:x"], BULK, None]))
    elif shape == 18:
        body["Operations"] = draw(st.sampled_from([[], None, "x", {"method": "POST"}]))
    elif shape == 17:
        return draw(st.sampled_from([b"", b"{", b"[]", b"null", b'{"schemas": [']))
    elif shape == 16:
        del body["Operations"]
    if draw(st.booleans()):
        body["failOnErrors"] = draw(
            st.sampled_from([0, -1, "1", True, None, 1.5, 2**70])
            if draw(rarely(4))
            else st.integers(1, 3)
        )
    return body


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> bool:
    """Whether some text holds U+0000 or a lone surrogate (not JSON the server decodes)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, list):
        return any(_unstorable(item) for item in value)
    if isinstance(value, dict):
        return any(_unstorable(key) or _unstorable(item) for key, item in value.items())
    return False


def _top_level_valid(body: Any) -> bool:
    """Whether a Bulk request is to be run (200), by RFC 7644 §3.7. U+0000 (which no database
    stores, ``scim.api.http.read_json``) or a lone surrogate anywhere refuses it whole."""
    if not isinstance(body, dict) or body.get("schemas") != [BULK]:
        return False
    if _unstorable(body):
        return False
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        return False
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (type(fail_on_errors) is not int or fail_on_errors < 1):
        return False
    bulk_ids = [
        item.get("bulkId")
        for item in operations
        if isinstance(item, dict) and isinstance(item.get("bulkId"), str) and item.get("bulkId")
    ]
    return len(bulk_ids) == len(set(bulk_ids))


def _located(entry: dict[str, Any], base: str) -> str:
    location = entry.get("location")
    assert isinstance(location, str) and location.startswith(base), entry
    return location.rsplit("/", 1)[-1]


@fuzz_settings(200)
@given(request=bulk_requests())
async def test_bulk_requests(world: World, request: Any) -> None:
    await world.ready()
    before, away_before = await world.states()
    resolved: Any = request if isinstance(request, bytes) else world.resolve(request)
    content = resolved if isinstance(resolved, bytes) else json.dumps(resolved).encode()
    response = await world.stockholm.post("/Bulk", content=content)
    note(f"{response.status_code} {response.text[:3000]}")
    count("bulk", response.status_code)
    check_response(response)
    after, away_after = await world.states()
    assert_unchanged(away_before, away_after, "a Bulk request changed another organisation")
    if response.status_code != 200:
        if response.status_code != 413:
            assert not _top_level_valid(resolved), response.text
        assert_unchanged(before, after, "a refused Bulk request changed the organisation")
        return
    assert _top_level_valid(resolved)
    payload = response.json()
    assert payload["schemas"] == [BULK_RESPONSE], payload
    entries = payload["Operations"]
    sent = resolved["Operations"]
    fail_on_errors = resolved.get("failOnErrors")
    assert len(entries) <= len(sent)
    if fail_on_errors is None:
        assert len(entries) == len(sent), payload
    errors = 0
    deleted: set[str] = set()
    changed: dict[str, list[str]] = {}  # id: versions reported
    base = "http://scim.test/scim/v2/"
    # Entries come in request order; an operation naming a POST by bulkId runs after it
    # wherever it stands, so it may name a resource whose POST is reported later.
    posted = {
        _located(entry, base): entry["location"][len(base) :].split("/")[0][:-1]
        for entry in entries
        if entry.get("method") == "POST" and entry.get("status") == "201"
    }
    for entry in entries:
        status = int(entry["status"])
        assert entry["status"] == str(status) and status in BULK_STATUSES, entry
        STATUSES.setdefault("bulk operations", Counter())[status] += 1
        if status >= 400:
            errors += 1
            check_error_body(entry.get("response"), status)
            assert "location" not in entry, entry
            continue
        assert "response" not in entry, entry
        resource_id = _located(entry, base)
        method = entry["method"]
        kind = entry["location"][len(base) :].split("/")[0]
        if method == "POST":
            assert status == 201, entry
            assert resource_id not in before.resources, entry
            assert posted[resource_id] == kind[:-1], entry
        elif method == "DELETE":
            assert status == 204 and "version" not in entry, entry
            assert resource_id in before.resources or resource_id in posted, entry
            deleted.add(resource_id)
        else:
            assert method in ("PUT", "PATCH") and status in (200, 204), entry
            assert resource_id in before.resources or resource_id in posted, entry
            changed.setdefault(resource_id, []).append(entry["version"])
    created = {key: kind for key, kind in posted.items() if key not in deleted}
    if fail_on_errors is not None:
        assert errors <= fail_on_errors, payload
        if len(entries) < len(sent):
            assert errors == fail_on_errors, payload
    # Each operation is its own transaction: what is stored is what succeeded, nothing else.
    assert after.resources.keys() == (before.resources.keys() - deleted) | created.keys(), payload
    for resource_id, kind in created.items():
        assert after.resources[resource_id]["resource_type"] == kind
    touched = deleted | created.keys() | changed.keys()
    assert after.without(touched) == before.without(touched), payload
    for resource_id, versions in changed.items():
        if resource_id in after.resources and resource_id not in created:
            assert versions[-1] == f'W/"{after.resources[resource_id]["version"]}"', payload

    def kept(state: Snapshot) -> set[tuple[str, str, str | None]]:
        return {m for m in state.members if m[0] not in touched and m[1] not in deleted}

    assert kept(after) == kept(before), payload
    if fail_on_errors is None:
        _check_references(sent, entries)


def _check_references(sent: list[Any], entries: list[dict[str, Any]]) -> None:
    """An operation that succeeded refers only to POSTs (by bulkId) that succeeded."""
    succeeded = {
        item["bulkId"]
        for item, entry in zip(sent, entries, strict=True)
        if isinstance(item, dict)
        and isinstance(item.get("bulkId"), str)
        and entry["method"] == "POST"
        and entry["status"] == "201"
    }
    for item, entry in zip(sent, entries, strict=True):
        if int(entry["status"]) < 400 and isinstance(item, dict):
            referred = set(re.findall(r"bulkId:([^\s\"/]+)", json.dumps(item.get("data"))))
            referred |= set(re.findall(r"bulkId:([^\s\"/]+)", str(item.get("path", ""))))
            assert referred <= succeeded, (item, entry)


# -- what an attacker sends ----------------------------------------------------------------
#
# Resource ids no resource has (NUL, traversal, look-alikes, 5,000 characters), cursors made
# up or changed, bodies nested thousands deep, numbers no column holds, user names that read
# like another user's, HSA-ids with digits of other scripts.

HOSTILE_IDS = st.sampled_from(
    [
        "%00",
        "a%00b",
        "%2e%2e",
        "..%2F..%2Fetc%2Fpasswd",
        "x" * 5000,
        "%F0%9F%99%82",
        "%C3%A5",
        "%EF%BC%A1",
        "%20",
        "@user0@%00",
        "@foreign0@",
        "@foreign1@",
        "null",
        "-1",
        "9" * 40,
        "%FF%FE",
        "@USER0@",
    ]
)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in text)


# Ways of writing a seeded user's name that read the same: each must be refused as taken.
LOOK_ALIKE = st.sampled_from(
    [
        lambda name: name.upper(),
        lambda name: unicodedata.normalize("NFD", name),
        lambda name: _full_width(name),
        lambda name: _full_width(name).upper(),
        lambda name: unicodedata.normalize("NFD", name.swapcase()),
    ]
)
# The decimal digits of other scripts: full-width, Arabic-Indic, Devanagari, mathematical bold.
FOREIGN_DIGITS = st.sampled_from(
    ["".join(chr(zero + n) for n in range(10)) for zero in (0xFF10, 0x0660, 0x0966, 0x1D7CE)]
)
HUGE_NUMBERS = st.sampled_from(
    ["1e999", "-1e999", "9" * 400, "2e308", "1" + "0" * 20, "-0", "1E+9"]
)


def _nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


@st.composite
def hostile_cases(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["path", "cursor", "nested", "look-alike", "hsa-id", "number", "query"])
    )
    case: dict[str, Any] = {"kind": kind, "method": "GET", "path": "/Users", "params": {}}
    case["content"] = None
    if kind == "path":
        case["method"] = draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]))
        endpoint = draw(st.sampled_from(["Users", "Groups"]))
        case["path"] = f"/{endpoint}/{draw(HOSTILE_IDS)}"
        if case["method"] == "PUT":
            body = _user("ny.hostile", "SE2120000142-HOST1")
            case["content"] = json.dumps(body).encode()
        elif case["method"] == "PATCH":
            operation = {"op": "replace", "path": "displayName", "value": "Hostile"}
            case["content"] = json.dumps({"schemas": [PATCH_SCHEMA], "Operations": [operation]})
    elif kind == "cursor":
        case["path"] = draw(st.sampled_from(["/Users", "/Groups", "/"]))
        how = draw(st.sampled_from(["random", "flipped", "json"]))
        case["cursor"] = how
        if how == "random":
            raw = draw(st.binary(min_size=1, max_size=80))
            case["params"]["cursor"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        elif how == "json":
            parts = draw(
                st.lists(
                    st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans()),
                    max_size=4,
                )
            )
            raw = bytes(16) + json.dumps(parts).encode()
            case["params"]["cursor"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        else:
            case["flip"] = draw(st.integers(0, 200))
        if draw(st.booleans()):
            case["params"]["sortBy"] = draw(st.sampled_from(["meta.created", "meta.lastModified"]))
    elif kind == "nested":
        depth = draw(st.sampled_from([63, 64, 65, 100, 1000, 5000, 20000]))
        case["method"], case["path"] = draw(
            st.sampled_from(
                [
                    ("POST", "/Users"),
                    ("PATCH", "/Users/@user0@"),
                    ("POST", "/Bulk"),
                    ("POST", "/.search"),
                    ("PUT", "/Groups/@group0@"),
                ]
            )
        )
        inner = _nested(depth).decode()
        case["content"] = (
            '{"schemas": ["' + USER_SCHEMA + '"], "userName": "deep", "x": ' + inner + "}"
        ).encode()
    elif kind == "look-alike":
        case["method"], case["path"] = "POST", "/Users"
        name = draw(LOOK_ALIKE)(draw(st.sampled_from(USER_NAMES)))
        case["content"] = json.dumps(_user(name, f"SE2120000142-LA{draw(st.integers(1, 999))}"))
    elif kind == "hsa-id":
        case["method"], case["path"] = "POST", "/Users"
        digits = draw(FOREIGN_DIGITS)
        serial = "".join(draw(st.sampled_from(digits)) for _ in range(10))
        case["content"] = json.dumps(_user("ny.hsa", f"SE{serial}-X1"), ensure_ascii=False)
    elif kind == "number":
        number = draw(HUGE_NUMBERS)
        case["method"], case["path"] = draw(
            st.sampled_from([("POST", "/Users"), ("PUT", "/Users/@user1@"), ("POST", "/Bulk")])
        )
        field_name = draw(st.sampled_from(["active", "userName", "x", "version", "failOnErrors"]))
        case["content"] = (
            '{"schemas": ["'
            + USER_SCHEMA
            + '", "'
            + BULK
            + '"], "userName": "ny.number", "'
            + field_name
            + '": '
            + number
            + "}"
        ).encode()
    else:
        case["params"] = {
            name: draw(st.sampled_from(["-1", "0", "99999999999999999999", "1e3", "", "x", "½"]))
            for name in draw(
                st.sets(st.sampled_from(["startIndex", "count", "attributes", "sortOrder"]))
            )
        }
        case["path"] = draw(st.sampled_from(["/Users", "/Groups", "/"]))
    return case


@fuzz_settings(300)
@given(case=hostile_cases())
async def test_hostile_requests(world: World, case: dict[str, Any]) -> None:
    await world.ready()
    before, away_before = await world.states()
    params = dict(case["params"])
    if case.get("cursor") == "flipped":
        page = await world.stockholm.get(case["path"], params={"cursor": "", "count": 1})
        issued = base64.urlsafe_b64decode(page.json()["nextCursor"] + "==")
        changed = bytearray(issued)
        changed[case["flip"] % len(changed)] ^= 1 << (case["flip"] % 8)
        params["cursor"] = base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
    content = case["content"]
    if isinstance(content, str):
        content = content.encode()
    content = world.resolve(content.decode()).encode() if content else None
    response = await world.stockholm.request(
        case["method"],
        world.resolve(case["path"]),
        content=content,
        params=params,
        headers={"Content-Type": SCIM},
    )
    note(f"{response.status_code} {response.text[:500]}")
    count("hostile", response.status_code)
    check_response(response)
    after, away_after = await world.states()
    assert_unchanged(away_before, away_after, "a hostile request changed another organisation")
    if response.status_code >= 400:
        assert_unchanged(before, after, "a refused hostile request changed something")
    # Only odd numbers and query parameters may be taken; no id here names a resource.
    if case["kind"] not in ("number", "query"):
        assert response.status_code >= 400, "a hostile request was carried out"
    expected = {"look-alike": "uniqueness", "cursor": "invalidCursor", "hsa-id": "invalidValue"}
    if case["kind"] in expected:
        assert scim_type(response) == expected[case["kind"]], response.text
    if case["kind"] == "nested" and (content or b"").count(b"[") > 64:
        assert scim_type(response) == "invalidSyntax", response.text


# -- the tally --------------------------------------------------------------------------------


def _tally() -> Iterator[str]:
    for prop in sorted(STATUSES):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(STATUSES[prop].items()))
        yield f"  {prop}: {sum(STATUSES[prop].values())} cases ({statuses})"


# What each property test counts its requests as.
COUNTED = {
    "test_filters_and_search_parameters": {"filters"},
    "test_patch_documents": {"patch"},
    "test_bulk_requests": {"bulk"},
    "test_hostile_requests": {"hostile"},
}


def test_report_how_many_cases_ran(
    capsys: pytest.CaptureFixture[str], database_url: str, request: pytest.FixtureRequest
) -> None:
    """Runs last in this file: the number of requests each property sent, by status; every
    property test of this run sent some."""
    database = database_url.split(":", 1)[0]
    sent = sum(REQUESTS.values())
    failed = sum(n for status, n in REQUESTS.items() if status >= 500)
    with capsys.disabled():
        print(f"\nfuzz cases on {database}:", *_tally(), sep="\n")
        print(f"  {sent} requests, {failed} answered 5xx")
    report = os.environ.get("SCIM_FUZZ_REPORT")
    if report:
        by_status = {str(status): n for status, n in sorted(REQUESTS.items())}
        summary = {"database": database, "requests": sent, "5xx": failed, "by_status": by_status}
        summary["cases"] = dict(CASES)
        with open(report, "w") as file:
            json.dump(summary, file)
    ran = {item.name for item in request.session.items}
    expected = set().union(*(props for test, props in COUNTED.items() if test in ran))
    assert {prop: CASES[prop] for prop in expected if CASES[prop] < 1} == {}
    assert set(CASES) == expected
