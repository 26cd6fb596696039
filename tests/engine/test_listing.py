"""Listing resources: sorting (RFC 7644 §3.4.2.3), index paging (§3.4.2.4), cursor
paging (RFC 9865) and projection (§3.4.2.5, §3.9), through the HTTP API."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar

from scim.app import create_app
from scim.hooks import Domain
from scim.protocol import paging
from scim.protocol.folding import sort_key
from scim.settings import Settings
from tests.conftest import (
    ENTERPRISE,
    GROUP_SCHEMA,
    SCIM,
    SEARCH_SCHEMA,
    USER_SCHEMA,
    Organisations,
    api_client,
    create_group,
    sent_by,
)
from tests.engine.conftest import create_user, user_body

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


# -- helpers ----------------------------------------------------------------------


async def listing(client: httpx.AsyncClient, path: str = "/Users", **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [LIST_SCHEMA]
    return body


async def searching(
    client: httpx.AsyncClient, path: str = "/Users/.search", **request: Any
) -> dict[str, Any]:
    response = await client.post(path, json={"schemas": [SEARCH_SCHEMA], **request})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [LIST_SCHEMA]
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [resource["id"] for resource in body.get("Resources", [])]


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body = response.json()
    assert ERROR_SCHEMA in body["schemas"]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


async def create_users(client: httpx.AsyncClient, count: int, prefix: str = "user") -> list[str]:
    """Create ``count`` users concurrently; their ids in userName order."""
    created = await asyncio.gather(
        *(create_user(client, f"{prefix}{index:03d}@example.se") for index in range(count))
    )
    return [user["id"] for user in created]


def ordered(users: list[dict[str, Any]], key: Any, descending: bool = False) -> list[str]:
    """The order the server promises: missing values last in both directions, ties by id."""
    present = [user for user in users if key(user) is not None]
    missing = [user for user in users if key(user) is None]
    present.sort(key=lambda user: user["id"])
    present.sort(key=key, reverse=descending)  # stable: ties stay in id order
    missing.sort(key=lambda user: user["id"])
    return [user["id"] for user in present + missing]


async def follow_cursor(
    client: httpx.AsyncClient, path: str = "/Users", **params: Any
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Every page of a cursor-paged GET listing, first to last."""
    pages: list[list[str]] = []
    bodies: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        body = await listing(client, path, cursor=cursor, **params)
        pages.append(ids(body))
        bodies.append(body)
        if "nextCursor" not in body:
            return pages, bodies
        cursor = body["nextCursor"]
        assert cursor
    raise AssertionError("cursor paging did not end")


async def follow_cursor_post(
    client: httpx.AsyncClient, path: str = "/Users/.search", **request: Any
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    pages: list[list[str]] = []
    bodies: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        body = await searching(client, path, cursor=cursor, **request)
        pages.append(ids(body))
        bodies.append(body)
        if "nextCursor" not in body:
            return pages, bodies
        cursor = body["nextCursor"]
    raise AssertionError("cursor paging did not end")


def flatten(pages: list[list[str]]) -> list[str]:
    return [item for page in pages for item in page]


# -- sorting --------------------------------------------------------------------


FAMILY_NAMES = [
    "Öberg",
    "Åberg",
    "Ärlig",
    "Eriksson",
    "ek",
    "Ek",
    "Zetterlund",
    "andersson",
    "Björk",
    None,
    None,
]


@pytest.fixture
async def family(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    users = []
    for index, family_name in enumerate(FAMILY_NAMES):
        attributes: dict[str, Any] = {}
        if family_name is not None:
            attributes["name"] = {"familyName": family_name, "givenName": f"G{index}"}
        users.append(await create_user(client, f"Family{index:02d}@example.se", **attributes))
    return users


def family_key(user: dict[str, Any]) -> str | None:
    name = user.get("name", {}).get("familyName")
    return sort_key(name) if name is not None else None


async def test_sort_by_family_name_case_insensitive_missing_last_ties_by_id(
    client: httpx.AsyncClient, family: list[dict[str, Any]]
) -> None:
    expected = ordered(family, family_key)
    body = await listing(client, sortBy="name.familyName")
    assert ids(body) == expected
    names = [r.get("name", {}).get("familyName") for r in body["Resources"]]
    # Case-insensitive: "ek" and "Ek" tie, and the tie is broken by id.
    tied = [r["id"] for r in body["Resources"] if family_key(r) == "ek"]
    assert tied == sorted(tied)
    present = [name for name in names if name is not None]
    assert [sort_key(n) for n in present] == sorted(sort_key(n) for n in present)
    assert names[-2:] == [None, None]
    # sortOrder=ascending is the default.
    explicit = await listing(client, sortBy="name.familyName", sortOrder="ascending")
    assert ids(explicit) == expected


async def test_sort_by_family_name_exact_order(
    client: httpx.AsyncClient, family: list[dict[str, Any]]
) -> None:
    """Swedish alphabetical order, case-insensitive: å, ä, ö after z, in that order."""
    body = await listing(client, sortBy="name.familyName")
    names = [r.get("name", {}).get("familyName") for r in body["Resources"]]
    assert [n.lower() if n else n for n in names] == [
        "andersson",
        "björk",
        "ek",
        "ek",
        "eriksson",
        "zetterlund",
        "åberg",
        "ärlig",
        "öberg",
        None,
        None,
    ]


async def test_sort_descending_keeps_missing_last_and_ties_by_id(
    client: httpx.AsyncClient, family: list[dict[str, Any]]
) -> None:
    expected = ordered(family, family_key, descending=True)
    body = await listing(client, sortBy="name.familyName", sortOrder="descending")
    assert ids(body) == expected
    names = [r.get("name", {}).get("familyName") for r in body["Resources"]]
    assert [n.lower() if n else n for n in names] == [
        "öberg",
        "ärlig",
        "åberg",
        "zetterlund",
        "eriksson",
        "ek",
        "ek",
        "björk",
        "andersson",
        None,
        None,
    ]
    searched = await searching(client, sortBy="name.familyName", sortOrder="descending")
    assert ids(searched) == expected


async def test_sort_by_user_name_get_and_post(client: httpx.AsyncClient) -> None:
    names = ["charlie@x.se", "Alice@x.se", "bob@x.se", "Ödmjuk@x.se", "åsa@x.se", "David@x.se"]
    users = [await create_user(client, name) for name in names]
    expected = ordered(users, lambda user: user["userName"].lower())
    got = await listing(client, sortBy="userName")
    assert ids(got) == expected
    assert [r["userName"] for r in got["Resources"]] == [
        "Alice@x.se",
        "bob@x.se",
        "charlie@x.se",
        "David@x.se",
        "åsa@x.se",
        "Ödmjuk@x.se",
    ]
    assert ids(await searching(client, sortBy="userName")) == expected
    descending = await searching(client, sortBy="userName", sortOrder="descending")
    assert ids(descending) == list(reversed(expected))
    # Attribute names are case-insensitive (RFC 7643 §2.1), in sortBy too.
    assert ids(await listing(client, sortBy="USERNAME")) == expected
    fully_qualified = await listing(client, sortBy=f"{USER_SCHEMA}:userName")
    assert ids(fully_qualified) == expected


async def test_sort_by_a_stored_attribute_folds_non_ascii(client: httpx.AsyncClient) -> None:
    """``title`` has no column of its own: it is sorted from the stored document."""
    titles = ["Öl", "åsa", "Åsa", "bertil", "Bertil", "ärlig", "Zeta", "ÄRLIG"]
    users = [
        await create_user(client, f"title{index}@x.se", title=title)
        for index, title in enumerate(titles)
    ]
    users.append(await create_user(client, "untitled@x.se"))
    expected = ordered(users, lambda user: user["title"].lower() if "title" in user else None)
    assert ids(await listing(client, sortBy="title")) == expected
    descending = ordered(
        users, lambda user: user["title"].lower() if "title" in user else None, descending=True
    )
    assert ids(await listing(client, sortBy="title", sortOrder="descending")) == descending
    pages, _ = await follow_cursor(client, sortBy="title", count=2)
    assert flatten(pages) == expected
    pages, _ = await follow_cursor(client, sortBy="title", sortOrder="descending", count=3)
    assert flatten(pages) == descending


async def test_sort_by_meta_created(client: httpx.AsyncClient) -> None:
    users = [await create_user(client, f"created{index}@x.se") for index in range(5)]
    # Created in reverse userName order, so that the two sorts differ.
    users += [await create_user(client, f"a-created{index}@x.se") for index in range(3)]

    def created(user: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(user["meta"]["created"])

    expected = ordered(users, created)
    assert ids(await listing(client, sortBy="meta.created")) == expected
    assert ids(await searching(client, sortBy="meta.created")) == expected
    descending = await listing(client, sortBy="meta.created", sortOrder="descending")
    assert ids(descending) == ordered(users, created, descending=True)


async def test_sort_by_multi_valued_uses_primary_else_first(client: httpx.AsyncClient) -> None:
    primary_second = await create_user(
        client,
        "u1@x.se",
        emails=[
            {"value": "zz@x.se", "type": "home"},
            {"value": "bb@x.se", "type": "work", "primary": True},
        ],
    )
    first_without_primary = await create_user(
        client,
        "u2@x.se",
        emails=[{"value": "cc@x.se"}, {"value": "aa@x.se"}],
    )
    many_without_primary = await create_user(
        client,
        "u3@x.se",
        emails=[{"value": f"{letter}{letter}@x.se"} for letter in "dabcefgh"],
    )
    upper_case_primary = await create_user(
        client, "u4@x.se", emails=[{"value": "A1@x.se", "primary": True}]
    )
    no_emails = await create_user(client, "u5@x.se")
    expected = [
        upper_case_primary["id"],  # a1@x.se (case-insensitive)
        primary_second["id"],  # bb@x.se, the primary, not zz
        first_without_primary["id"],  # cc@x.se, the first, not aa
        many_without_primary["id"],  # dd@x.se
        no_emails["id"],
    ]
    assert ids(await listing(client, sortBy="emails")) == expected
    assert ids(await listing(client, sortBy="emails.value")) == expected
    assert ids(await searching(client, sortBy="emails")) == expected
    descending = await listing(client, sortBy="emails", sortOrder="descending")
    assert ids(descending) == [*reversed(expected[:-1]), no_emails["id"]]


async def test_sort_by_sub_attribute_of_multi_valued(client: httpx.AsyncClient) -> None:
    """``emails.type`` sorts by the type of the primary email, else of the first."""
    work_first = await create_user(client, "s1@x.se", emails=[{"value": "a@x.se", "type": "work"}])
    home_primary = await create_user(
        client,
        "s2@x.se",
        emails=[
            {"value": "b@x.se", "type": "work"},
            {"value": "c@x.se", "type": "home", "primary": True},
        ],
    )
    other_first = await create_user(
        client,
        "s3@x.se",
        emails=[{"value": "0@x.se", "type": "other"}, {"value": "1@x.se", "type": "home"}],
    )
    untyped = await create_user(client, "s4@x.se", emails=[{"value": "d@x.se"}])
    expected = [home_primary["id"], other_first["id"], work_first["id"], untyped["id"]]
    assert ids(await listing(client, sortBy="emails.type")) == expected
    descending = await listing(client, sortBy="emails.type", sortOrder="descending")
    assert ids(descending) == [
        work_first["id"],
        other_first["id"],
        home_primary["id"],
        untyped["id"],
    ]
    pages, _ = await follow_cursor(client, sortBy="emails.type", count=1)
    assert flatten(pages) == expected


async def test_sort_by_extension_attribute(client: httpx.AsyncClient) -> None:
    departments = ["Vård", "ekonomi", "IT", "Ekonomi", None, "Äldreomsorg"]
    users = []
    for index, department in enumerate(departments):
        extension = {ENTERPRISE: {"department": department}} if department else {}
        users.append(
            await create_user(
                client, f"dep{index}@x.se", schemas=[USER_SCHEMA, ENTERPRISE], **extension
            )
        )

    def department(user: dict[str, Any]) -> str | None:
        value = user.get(ENTERPRISE, {}).get("department")
        return value.lower() if value else None

    sort_by = f"{ENTERPRISE}:department"
    expected = ordered(users, department)
    assert ids(await listing(client, sortBy=sort_by)) == expected
    descending = ordered(users, department, descending=True)
    assert ids(await searching(client, sortBy=sort_by, sortOrder="descending")) == descending
    pages, _ = await follow_cursor(client, sortBy=sort_by, sortOrder="descending", count=2)
    assert flatten(pages) == descending


async def test_sort_by_case_exact_external_id(client: httpx.AsyncClient) -> None:
    # externalId is caseExact: "B" sorts before "a" (code point order).
    users = [
        await create_user(client, f"ext{index}@x.se", externalId=external_id)
        for index, external_id in enumerate(["b", "B", "a", "A"])
    ]
    by_external_id = {user["externalId"]: user["id"] for user in users}
    got = ids(await listing(client, sortBy="externalId"))
    assert got == [by_external_id[value] for value in ["A", "B", "a", "b"]]


async def test_sort_by_boolean(client: httpx.AsyncClient) -> None:
    users = [
        await create_user(
            client, f"act{index}@x.se", **({"active": active} if active is not None else {})
        )
        for index, active in enumerate([True, False, None, True, False])
    ]
    expected = ordered(users, lambda user: user.get("active"))
    assert ids(await listing(client, sortBy="active")) == expected
    pages, _ = await follow_cursor(client, sortBy="active", count=2)
    assert flatten(pages) == expected
    descending = ordered(users, lambda user: user.get("active"), descending=True)
    pages, _ = await follow_cursor(client, sortBy="active", sortOrder="descending", count=2)
    assert flatten(pages) == descending


async def test_sort_groups_by_display_name(client: httpx.AsyncClient) -> None:
    groups = [await create_group(client, name) for name in ["beta", "Alfa", "Gamma", "delta"]]
    expected = ordered(groups, lambda group: group["displayName"].lower())
    assert ids(await listing(client, "/Groups", sortBy="displayName")) == expected


@pytest.mark.parametrize(
    "sort_by",
    ["nope", "name.nope", "urn:unknown:schema:attr", 'emails[type eq "work"]', "name", ""],
)
async def test_sort_by_unknown_attribute_is_400(client: httpx.AsyncClient, sort_by: str) -> None:
    await create_user(client, "someone@x.se")
    assert_scim_error(await client.get("/Users", params={"sortBy": sort_by}), 400)
    response = await client.post(
        "/Users/.search", json={"schemas": [SEARCH_SCHEMA], "sortBy": sort_by}
    )
    assert_scim_error(response, 400)
    assert response.json()["scimType"] in ("invalidPath", "invalidValue", "invalidSyntax")


async def test_sort_order_without_known_value_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/Users", params={"sortBy": "userName", "sortOrder": "sideways"})
    assert_scim_error(response, 400)


async def test_sort_by_password_is_400(client: httpx.AsyncClient) -> None:
    assert_scim_error(await client.get("/Users", params={"sortBy": "password"}), 400)


# -- index paging -----------------------------------------------------------------


async def test_index_pages_are_disjoint_complete_and_stable(client: httpx.AsyncClient) -> None:
    created = await create_users(client, 25)
    everything = await listing(client)
    assert everything["totalResults"] == 25
    assert everything["itemsPerPage"] == 25
    assert everything["startIndex"] == 1
    assert sorted(ids(everything)) == sorted(created)

    pages = []
    for start in (1, 11, 21):
        page = await listing(client, startIndex=start, count=10)
        assert page["totalResults"] == 25
        assert page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"])
        pages.append(ids(page))
    assert [len(page) for page in pages] == [10, 10, 5]
    assert flatten(pages) == ids(everything)
    assert len(set(flatten(pages))) == 25

    # The same window twice gives the same resources in the same order.
    again = await listing(client, startIndex=11, count=10)
    assert ids(again) == pages[1]
    # An overlapping window agrees with the others.
    overlapping = await listing(client, startIndex=6, count=10)
    assert ids(overlapping) == ids(everything)[5:15]

    # The same through POST .search.
    searched = [ids(await searching(client, startIndex=start, count=10)) for start in (1, 11, 21)]
    assert searched == pages


async def test_index_paging_with_sort(client: httpx.AsyncClient) -> None:
    await create_users(client, 25)
    everything = ids(await listing(client, sortBy="userName", sortOrder="descending"))
    pages = [
        ids(await listing(client, sortBy="userName", sortOrder="descending", startIndex=s, count=7))
        for s in (1, 8, 15, 22)
    ]
    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert flatten(pages) == everything


async def test_a_deep_page_reads_the_groups_of_its_own_users_only(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """Page 5 of 5 sorted users carries each one's groups; on PostgreSQL its statement reads
    the groups of those 5 alone. PostgreSQL computed the select list of every row a sort
    index gave it, the offset's too: page 201 of 100 at 1M users took 320-415 ms."""
    created = await create_users(client, 25)
    group = await create_group(client, "Alla på sidan", created)
    with sent_by(app.state.service.read_engine, "SELECT") as sent:
        page = await listing(client, sortBy="userName", startIndex=21, count=5)
    everything = await listing(client, sortBy="userName")
    assert ids(page) == ids(everything)[20:]
    assert [[g["value"] for g in user["groups"]] for user in page["Resources"]] == [
        [group["id"]]
    ] * 5
    if app.state.engine.dialect.name != "postgresql":
        return
    ((statement, parameters),) = [(s, p) for s, p in sent if "OFFSET" in s]
    async with app.state.engine.connect() as connection:
        explained = await connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        )
        plan = explained.scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    loops = [node["Actual Loops"] for node in _nodes(plan[0]["Plan"]) if _reads_members(node)]
    assert loops and max(loops) <= 5, loops


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


def _reads_members(node: dict[str, Any]) -> bool:
    return node.get("Relation Name") == "members" or "members" in node.get("Index Name", "")


async def test_start_index_beyond_the_end(client: httpx.AsyncClient) -> None:
    await create_users(client, 25)
    for start in (26, 100):
        body = await listing(client, startIndex=start, count=10)
        assert body["totalResults"] == 25
        assert body["itemsPerPage"] == 0
        assert body["startIndex"] == start
        assert body.get("Resources", []) == []
    body = await searching(client, startIndex=1000)
    assert body["totalResults"] == 25
    assert body.get("Resources", []) == []


async def test_a_start_index_past_what_json_holds_exactly_is_400(
    client: httpx.AsyncClient,
) -> None:
    """Up to 2^53 (RFC 8259 §6) a page past the end is empty; beyond, the databases' 64-bit
    OFFSET would overflow (it was a 500), so it is refused (found by tests/test_fuzz.py)."""
    await create_users(client, 2)
    body = await listing(client, startIndex=2**53)
    assert body["startIndex"] == 2**53
    assert body.get("Resources", []) == []
    for path, start in (("/Users", "99999999999999999999"), ("/", str(2**63))):
        response = await client.get(path, params={"startIndex": start})
        assert response.status_code == 400, response.text
        assert response.json()["scimType"] == "invalidValue"
    for path in ("/Users/.search", "/.search"):
        response = await client.post(
            path, json={"schemas": [SEARCH_SCHEMA], "startIndex": 2**53 + 1}
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith(SCIM)
        error = response.json()
        assert error["schemas"] == [ERROR_SCHEMA]
        assert (error["status"], error["scimType"]) == ("400", "invalidValue")
        assert "startIndex" in error["detail"]


async def test_last_partial_page(client: httpx.AsyncClient) -> None:
    created = await create_users(client, 25)
    body = await listing(client, startIndex=25, count=10)
    assert body["totalResults"] == 25
    assert body["itemsPerPage"] == 1
    assert ids(body)[0] in created


async def test_count_zero_returns_only_the_total(client: httpx.AsyncClient) -> None:
    await create_users(client, 25)
    body = await listing(client, count=0)
    assert body["totalResults"] == 25
    assert not body.get("Resources")
    assert body["itemsPerPage"] == 0
    body = await searching(client, count=0, filter='userName sw "user00"')
    assert body["totalResults"] == 10
    assert not body.get("Resources")


async def test_negative_count_is_zero(client: httpx.AsyncClient) -> None:
    # RFC 7644 §3.4.2.4: "A negative value SHALL be interpreted as 0."
    await create_users(client, 3)
    body = await listing(client, count=-5)
    assert body["totalResults"] == 3
    assert not body.get("Resources")


async def test_default_page_size(client: httpx.AsyncClient, settings: Settings) -> None:
    await create_users(client, 3)
    body = await listing(client)
    assert body["itemsPerPage"] == 3 <= settings.default_page_size


@pytest.mark.parametrize("start", ["-5", "0"])
async def test_start_index_below_one_is_one(client: httpx.AsyncClient, start: str) -> None:
    await create_users(client, 12)
    first = await listing(client, count=5)
    body = await listing(client, startIndex=start, count=5)
    assert body["startIndex"] == 1
    assert ids(body) == ids(first)
    searched = await searching(client, startIndex=int(start), count=5)
    assert searched["startIndex"] == 1
    assert ids(searched) == ids(first)


async def test_non_integer_paging_parameters_are_400(client: httpx.AsyncClient) -> None:
    assert_scim_error(await client.get("/Users", params={"startIndex": "one"}), 400)
    assert_scim_error(await client.get("/Users", params={"count": "many"}), 400)


@pytest.fixture
async def small_client(
    client: httpx.AsyncClient, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database with max_page_size=5 (``client`` cleans first)."""
    small: Litestar = create_app(
        Settings(database_url=database_url, default_page_size=50, max_page_size=5), Domain()
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=small),
            base_url="http://scim.test/scim/v2",
            headers=client.headers,
        ) as small_client:
            yield small_client
    finally:
        await small.state.engine.dispose()


async def test_count_above_max_page_size_is_capped(
    client: httpx.AsyncClient, small_client: httpx.AsyncClient
) -> None:
    created = await create_users(client, 12)
    for params in ({"count": 100}, {}, {"count": 5}):
        body = await listing(small_client, **params)
        assert body["totalResults"] == 12
        assert body["itemsPerPage"] == 5
        assert len(body["Resources"]) == 5
    body = await searching(small_client, count=1000, startIndex=11)
    assert body["itemsPerPage"] == 2
    assert body["totalResults"] == 12
    pages, _ = await follow_cursor(small_client, count=100)
    assert [len(page) for page in pages] == [5, 5, 2]
    assert sorted(flatten(pages)) == sorted(created)
    config = (await small_client.get("/ServiceProviderConfig")).json()
    assert config["pagination"]["maxPageSize"] == 5
    assert config["filter"]["maxResults"] == 5


async def test_count_above_max_page_size_main_app(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await create_users(client, 4)
    body = await listing(client, count=settings.max_page_size * 10)
    assert body["itemsPerPage"] == 4 <= settings.max_page_size


# -- cursor paging (RFC 9865) -------------------------------------------------------


async def test_cursor_paging_without_sort(client: httpx.AsyncClient) -> None:
    created = await create_users(client, 25)
    pages, bodies = await follow_cursor(client, count=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert len(set(flatten(pages))) == 25
    assert sorted(flatten(pages)) == sorted(created)
    for body in bodies:
        assert body["totalResults"] == 25
        assert body["itemsPerPage"] == len(body["Resources"])
        assert "startIndex" not in body
    assert "nextCursor" in bodies[0] and "nextCursor" in bodies[1]
    assert "nextCursor" not in bodies[2]
    # Same order as an index listing without sortBy.
    assert flatten(pages) == ids(await listing(client))


async def test_cursor_paging_exact_multiple_ends_without_next_cursor(
    client: httpx.AsyncClient,
) -> None:
    created = await create_users(client, 20)
    pages, _ = await follow_cursor(client, count=10)
    assert [len(page) for page in pages] == [10, 10]
    assert sorted(flatten(pages)) == sorted(created)


async def test_cursor_paging_default_count(client: httpx.AsyncClient) -> None:
    created = await create_users(client, 7)
    pages, bodies = await follow_cursor(client)
    assert pages == [ids(await listing(client))]
    assert sorted(pages[0]) == sorted(created)
    assert "nextCursor" not in bodies[0]
    assert "startIndex" not in bodies[0]


@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_cursor_paging_sorted_by_user_name(client: httpx.AsyncClient, order: str) -> None:
    await create_users(client, 25)
    expected = ids(await listing(client, sortBy="userName", sortOrder=order))
    pages, bodies = await follow_cursor(client, sortBy="userName", sortOrder=order, count=4)
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 4, 1]
    assert flatten(pages) == expected
    assert all(body["totalResults"] == 25 for body in bodies)
    assert all("startIndex" not in body for body in bodies)


@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_cursor_paging_over_ties_and_missing_values(
    client: httpx.AsyncClient, family: list[dict[str, Any]], order: str
) -> None:
    expected = ordered(family, family_key, descending=order == "descending")
    for count in (1, 2, 3):
        pages, bodies = await follow_cursor(
            client, sortBy="name.familyName", sortOrder=order, count=count
        )
        assert flatten(pages) == expected, count
        assert all(len(page) <= count for page in pages)
        assert all(body["totalResults"] == len(family) for body in bodies)
    pages, _ = await follow_cursor_post(client, sortBy="name.familyName", sortOrder=order, count=2)
    assert flatten(pages) == expected


@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_cursor_paging_by_meta_created(client: httpx.AsyncClient, order: str) -> None:
    created = await create_users(client, 9)
    expected = ids(await listing(client, sortBy="meta.created", sortOrder=order))
    assert sorted(expected) == sorted(created)
    pages, _ = await follow_cursor(client, sortBy="meta.created", sortOrder=order, count=2)
    assert flatten(pages) == expected


@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_cursor_paging_by_multi_valued(client: httpx.AsyncClient, order: str) -> None:
    for index, letter in enumerate("dbeacfa"):
        emails = [{"value": f"{letter}{index}@x.se"}] if index % 3 else []
        await create_user(client, f"m{index}@x.se", emails=emails)
    expected = ids(await listing(client, sortBy="emails", sortOrder=order))
    pages, _ = await follow_cursor(client, sortBy="emails", sortOrder=order, count=2)
    assert flatten(pages) == expected


async def test_cursor_paging_through_post_search(client: httpx.AsyncClient) -> None:
    created = await create_users(client, 13)
    pages, bodies = await follow_cursor_post(client, count=5)
    assert [len(page) for page in pages] == [5, 5, 3]
    assert sorted(flatten(pages)) == sorted(created)
    assert all("startIndex" not in body for body in bodies)
    assert all(body["totalResults"] == 13 for body in bodies)


async def test_cursor_values_are_unreserved_characters(client: httpx.AsyncClient) -> None:
    await create_users(client, 3)
    body = await listing(client, cursor="", count=1, sortBy="userName")
    cursor = body["nextCursor"]
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert cursor and set(cursor) <= allowed


@pytest.mark.parametrize("garbage", ["garbage", "AAAA", "not-a-cursor~", "e30", "!!!"])
async def test_garbage_cursor_is_400_invalid_cursor(
    client: httpx.AsyncClient, garbage: str
) -> None:
    await create_users(client, 3)
    response = await client.get("/Users", params={"cursor": garbage})
    assert_scim_error(response, 400, "invalidCursor")
    response = await client.post(
        "/Users/.search", json={"schemas": [SEARCH_SCHEMA], "cursor": garbage}
    )
    assert_scim_error(response, 400, "invalidCursor")


def forged(*parts: Any) -> str:
    """A cursor in the server's layout (a tag, then JSON) that it never signed."""
    raw = bytes(paging.TAG_SIZE) + json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signed(app: Litestar, tenant_id: int, *parts: Any) -> str:
    """``parts`` signed with the server's own secret, as only the server could."""
    secret = str(app.state.service.settings.cursor_secret).encode()
    return paging.seal(json.dumps(list(parts)).encode(), secret, f"{tenant_id}:User")


# Cursors a client might make up: the layout is no secret, the key is.
FORGED = [
    ("", ["", None, "\u0000"]),
    ("", ["", None, "x' OR 1=1 --"]),
    ("userName", ["userName", {"x": 1}, "id"]),
    ("userName", ["userName", 5, "id"]),
    ("userName", ["userName", [1, 2], "id"]),
    ("userName", ["userName", "a"]),
    ("userName", ["userName", "a", 7]),
    ("userName", [{"a": 1}]),
    ("userName", []),
    ("meta.created", ["meta.created", "not a date", "id"]),
    ("meta.created", ["meta.created", 12, "id"]),
    ("meta.version", ["meta.version", 2**63 + 1, "id"]),
    ("meta.version", ["meta.version", -(2**64), "id"]),
    ("active", ["active", "yes", "id"]),
    ("", ["", None, 3]),
]


@pytest.mark.parametrize(("sort_by", "parts"), FORGED)
async def test_forged_cursor_is_400_invalid_cursor(
    client: httpx.AsyncClient, sort_by: str, parts: list[Any]
) -> None:
    await create_users(client, 2)
    params = {"cursor": forged(*parts), "count": 1}
    if sort_by:
        params["sortBy"] = sort_by
    assert_scim_error(await client.get("/Users", params=params), 400, "invalidCursor")


# The first two are well formed: signed, they would be good cursors.
@pytest.mark.parametrize(("sort_by", "parts"), FORGED[2:])
async def test_signed_cursor_of_the_wrong_shape_is_400_invalid_cursor(
    app: Litestar,
    client: httpx.AsyncClient,
    organisations: Organisations,
    sort_by: str,
    parts: list[Any],
) -> None:
    """Were the secret to leak, a cursor of the wrong shape or type still never reaches SQL."""
    await create_users(client, 2)
    params = {"cursor": signed(app, organisations.stockholm.id, *parts), "count": 1}
    if sort_by:
        params["sortBy"] = sort_by
    assert_scim_error(await client.get("/Users", params=params), 400, "invalidCursor")


async def test_a_changed_cursor_is_400_invalid_cursor(client: httpx.AsyncClient) -> None:
    """Any change to a cursor the server issued, of any byte, is refused."""
    await create_users(client, 3)
    body = await listing(client, cursor="", count=1, sortBy="userName")
    issued = base64.urlsafe_b64decode(body["nextCursor"] + "==")
    assert await listing(client, cursor=body["nextCursor"], count=1, sortBy="userName")
    for position in range(len(issued)):
        changed = bytearray(issued)
        changed[position] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
        response = await client.get(
            "/Users", params={"cursor": text, "count": 1, "sortBy": "userName"}
        )
        assert_scim_error(response, 400, "invalidCursor")


async def test_cursor_survives_a_restart_with_the_same_secret(
    settings: Settings, organisations: Organisations, clean: None
) -> None:
    """Servers sharing ``SCIM_CURSOR_SECRET`` take each other's cursors; others refuse them."""
    shared = replace(settings, cursor_secret="one secret for every server")
    apps = [create_app(shared, Domain()) for _ in range(2)]
    stranger = create_app(settings, Domain())
    try:
        async with api_client(apps[0], organisations.stockholm.token) as first:
            await create_users(first, 3)
            cursor = (await listing(first, cursor="", count=1))["nextCursor"]
        async with api_client(apps[1], organisations.stockholm.token) as second:
            body = await listing(second, cursor=cursor, count=1)
            assert body["itemsPerPage"] == 1
        async with api_client(stranger, organisations.stockholm.token) as third:
            response = await third.get("/Users", params={"cursor": cursor, "count": 1})
            assert_scim_error(response, 400, "invalidCursor")
    finally:
        for app in [*apps, stranger]:
            await app.state.engine.dispose()


async def test_cursor_from_another_sort_is_400_invalid_cursor(client: httpx.AsyncClient) -> None:
    await create_users(client, 5)
    body = await listing(client, cursor="", count=2, sortBy="userName")
    cursor = body["nextCursor"]
    for params in (
        {"sortBy": "name.familyName"},
        {},
        {"sortBy": "meta.created"},
    ):
        response = await client.get("/Users", params={"cursor": cursor, "count": 2, **params})
        assert_scim_error(response, 400, "invalidCursor")
    unsorted = (await listing(client, cursor="", count=2))["nextCursor"]
    response = await client.get("/Users", params={"cursor": unsorted, "sortBy": "userName"})
    assert_scim_error(response, 400, "invalidCursor")


async def test_cursor_from_another_sort_order_is_400_invalid_cursor(
    client: httpx.AsyncClient,
) -> None:
    await create_users(client, 5)
    ascending = await listing(client, cursor="", count=2, sortBy="userName")
    response = await client.get(
        "/Users",
        params={
            "cursor": ascending["nextCursor"],
            "count": 2,
            "sortBy": "userName",
            "sortOrder": "descending",
        },
    )
    assert_scim_error(response, 400, "invalidCursor")
    descending = await listing(
        client, cursor="", count=2, sortBy="userName", sortOrder="descending"
    )
    response = await client.get(
        "/Users", params={"cursor": descending["nextCursor"], "count": 2, "sortBy": "userName"}
    )
    assert_scim_error(response, 400, "invalidCursor")


async def test_service_provider_config_advertises_cursor_paging(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    config = (await client.get("/ServiceProviderConfig")).json()
    assert config["pagination"]["cursor"] is True
    assert config["pagination"]["index"] is True
    assert config["pagination"]["maxPageSize"] == settings.max_page_size
    assert config["pagination"]["defaultPageSize"] == settings.default_page_size


# -- filter + sort + page ---------------------------------------------------------


async def test_filter_sort_and_page_combined(client: httpx.AsyncClient) -> None:
    team = await asyncio.gather(
        *(
            create_user(
                client,
                f"team{index:02d}@x.se",
                name={"givenName": f"Given{(index * 7) % 12:02d}", "familyName": "Team"},
                active=index % 2 == 0,
            )
            for index in range(12)
        )
    )
    await asyncio.gather(
        *(
            create_user(client, f"other{index:02d}@x.se", name={"givenName": f"Given{index:02d}"})
            for index in range(6)
        )
    )
    chosen = [user for user in team if user["active"]]
    expected = ordered(chosen, lambda user: user["name"]["givenName"].lower(), descending=True)
    query = {
        "filter": 'userName sw "team" and active eq true',
        "sortBy": "name.givenName",
        "sortOrder": "descending",
    }
    pages = []
    for start in (1, 3, 5, 7):
        body = await listing(client, startIndex=start, count=2, **query)
        assert body["totalResults"] == 6
        assert body["startIndex"] == start
        pages.append(ids(body))
    assert flatten(pages) == expected
    assert pages[-1] == []

    cursor_pages, bodies = await follow_cursor(client, count=4, **query)
    assert flatten(cursor_pages) == expected
    assert [len(page) for page in cursor_pages] == [4, 2]
    assert all(body["totalResults"] == 6 for body in bodies)

    searched = await searching(client, startIndex=2, count=3, **query)
    assert ids(searched) == expected[1:4]
    assert searched["totalResults"] == 6

    projected = await listing(client, attributes="userName", count=2, **query)
    assert [set(r) for r in projected["Resources"]] == [{"id", "schemas", "userName"}] * 2


async def test_filter_matching_nothing(client: httpx.AsyncClient) -> None:
    await create_users(client, 3)
    body = await listing(client, filter='userName eq "nobody"', sortBy="userName")
    assert body["totalResults"] == 0
    assert body.get("Resources", []) == []
    pages, bodies = await follow_cursor(client, filter='userName eq "nobody"')
    assert pages == [[]]
    assert bodies[0]["totalResults"] == 0


# -- projection -------------------------------------------------------------------


MANAGER = "26118915-6090-4610-87e4-49d8ca9f808d"


def full_user(user_name: str = "bjensen@example.se") -> dict[str, Any]:
    return user_body(
        user_name,
        name={"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        displayName="Babs",
        emails=[
            {"value": "bjensen@example.se", "type": "work", "primary": True},
            {"value": "babs@example.org", "type": "home"},
        ],
        phoneNumbers=[{"value": "+46 8 123 45", "type": "work"}],
        active=True,
        password="hemligt-Lösenord-1",
        schemas=[USER_SCHEMA, ENTERPRISE],
        **{
            ENTERPRISE: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": MANAGER, "$ref": f"../Users/{MANAGER}"},
            }
        },
    )


@pytest.fixture
async def jensen(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/Users", json=full_user())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def projections(
    client: httpx.AsyncClient, user_id: str, **params: str
) -> list[dict[str, Any]]:
    """The same user as GET by id, GET list and POST .search return it under ``params``."""
    by_id = await client.get(f"/Users/{user_id}", params=params)
    assert by_id.status_code == 200, by_id.text
    listed = await listing(client, filter=f'id eq "{user_id}"', **params)
    request = {key: [part.strip() for part in value.split(",")] for key, value in params.items()}
    searched = await searching(client, filter=f'id eq "{user_id}"', **request)
    assert len(listed["Resources"]) == 1 and len(searched["Resources"]) == 1
    return [by_id.json(), listed["Resources"][0], searched["Resources"][0]]


async def test_default_representation(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in [jensen, *await projections(client, jensen["id"])]:
        assert user["userName"] == "bjensen@example.se"
        assert user["name"]["givenName"] == "Barbara"
        assert len(user["emails"]) == 2
        assert user[ENTERPRISE]["department"] == "Tour Operations"
        assert user["meta"]["resourceType"] == "User"
        assert "password" not in user


async def test_attributes_user_name(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], attributes="userName"):
        assert set(user) == {"id", "schemas", "userName"}
        assert user["id"] == jensen["id"]
        assert USER_SCHEMA in user["schemas"]
    # Attribute names are case-insensitive; a fully qualified name works too.
    for attributes in ("USERNAME", f"{USER_SCHEMA}:userName"):
        for user in await projections(client, jensen["id"], attributes=attributes):
            assert set(user) == {"id", "schemas", "userName"}


async def test_a_projection_is_the_requests_own(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    """Requests that name no attributes share one plan, which remembers what it does with
    each attribute: what other requests asked for leaves it as it was."""
    before = await projections(client, jensen["id"])
    for asked in ({"attributes": "userName,name.givenName"}, {"excludedAttributes": "emails"}):
        for user in await projections(client, jensen["id"], **asked):
            assert "emails" not in user
    assert await projections(client, jensen["id"]) == before
    assert all(len(user["emails"]) == 2 and "familyName" in user["name"] for user in before)


async def test_schemas_lists_only_the_extensions_returned(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    # RFC 7643 §3: "schemas" names the schemas of the attributes present.
    assert jensen["schemas"] == [USER_SCHEMA, ENTERPRISE]
    for user in await projections(client, jensen["id"]):
        assert user["schemas"] == [USER_SCHEMA, ENTERPRISE]
    for user in await projections(client, jensen["id"], attributes="userName"):
        assert user["schemas"] == [USER_SCHEMA]
    for user in await projections(client, jensen["id"], excludedAttributes=ENTERPRISE):
        assert user["schemas"] == [USER_SCHEMA]
    for user in await projections(client, jensen["id"], attributes=f"{ENTERPRISE}:department"):
        assert user["schemas"] == [USER_SCHEMA, ENTERPRISE]
    # No enterprise attribute left to return.
    for user in await projections(
        client, jensen["id"], attributes=f"userName,{ENTERPRISE}:costCenter"
    ):
        assert user["schemas"] == [USER_SCHEMA]
        assert ENTERPRISE not in user


async def test_meta_sub_attributes(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], attributes="meta.created"):
        assert set(user) == {"id", "schemas", "meta"}
        assert user["meta"] == {"created": jensen["meta"]["created"]}
    for user in await projections(client, jensen["id"], attributes="userName,meta.version"):
        assert user["meta"] == {"version": user["meta"]["version"]}
    for user in await projections(client, jensen["id"], excludedAttributes="meta.version"):
        assert set(user["meta"]) == {"resourceType", "created", "lastModified", "location"}
        assert user["userName"] == "bjensen@example.se"


async def test_attributes_sub_attribute(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], attributes="name.givenName"):
        assert set(user) == {"id", "schemas", "name"}
        assert user["name"] == {"givenName": "Barbara"}


async def test_attributes_multi_valued_sub_attribute(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(client, jensen["id"], attributes="emails.value"):
        assert set(user) == {"id", "schemas", "emails"}
        assert user["emails"] == [
            {"value": "bjensen@example.se"},
            {"value": "babs@example.org"},
        ]


async def test_attributes_several(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], attributes="userName,name.familyName,meta"):
        assert set(user) == {"id", "schemas", "userName", "name", "meta"}
        assert user["name"] == {"familyName": "Jensen"}
        assert user["meta"]["resourceType"] == "User"


async def test_attributes_extension_attribute(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(client, jensen["id"], attributes=f"{ENTERPRISE}:department"):
        assert set(user) == {"id", "schemas", ENTERPRISE}
        assert user[ENTERPRISE] == {"department": "Tour Operations"}


async def test_attributes_extension_sub_attribute(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(client, jensen["id"], attributes=f"{ENTERPRISE}:manager.value"):
        assert set(user) == {"id", "schemas", ENTERPRISE}
        assert user[ENTERPRISE] == {"manager": {"value": MANAGER}}


async def test_attributes_whole_extension(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(client, jensen["id"], attributes=ENTERPRISE):
        assert set(user) == {"id", "schemas", ENTERPRISE}
        assert user[ENTERPRISE] == jensen[ENTERPRISE]
        assert user[ENTERPRISE]["employeeNumber"] == "701984"
        assert user[ENTERPRISE]["department"] == "Tour Operations"


async def test_excluded_attributes(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], excludedAttributes="emails,meta"):
        assert "emails" not in user
        assert "meta" not in user
        assert user["id"] == jensen["id"]
        assert user["userName"] == "bjensen@example.se"
        assert user["name"]["givenName"] == "Barbara"
        assert user["phoneNumbers"] == jensen["phoneNumbers"]
        assert user[ENTERPRISE] == jensen[ENTERPRISE]


async def test_excluded_sub_attribute(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    for user in await projections(client, jensen["id"], excludedAttributes="name.givenName"):
        assert user["name"] == {"familyName": "Jensen", "formatted": "Barbara Jensen"}
        assert user["userName"] == "bjensen@example.se"


async def test_excluded_extension_attribute_and_extension(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(
        client, jensen["id"], excludedAttributes=f"{ENTERPRISE}:department"
    ):
        assert user[ENTERPRISE] == {
            key: value for key, value in jensen[ENTERPRISE].items() if key != "department"
        }
    for user in await projections(client, jensen["id"], excludedAttributes=ENTERPRISE):
        assert ENTERPRISE not in user
        assert user["userName"] == "bjensen@example.se"


async def test_excluding_always_returned_attributes_has_no_effect(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    for user in await projections(client, jensen["id"], excludedAttributes="id,schemas"):
        assert user["id"] == jensen["id"]
        assert USER_SCHEMA in user["schemas"]
        assert user["userName"] == "bjensen@example.se"


async def test_password_is_never_returned(client: httpx.AsyncClient) -> None:
    response = await client.post("/Users", json=full_user("pw@example.se"))
    assert response.status_code == 201
    created = response.json()
    assert "password" not in created
    user_id = created["id"]
    for params in ({}, {"attributes": "password"}, {"attributes": "userName,password"}):
        for user in await projections(client, user_id, **params):
            assert "password" not in user
    response = await client.post(
        "/Users", params={"attributes": "password"}, json=full_user("pw2@example.se")
    )
    assert response.status_code == 201
    assert set(response.json()) == {"id", "schemas"}
    replaced = await client.put(f"/Users/{user_id}", json=full_user("pw@example.se"))
    assert replaced.status_code == 200
    assert "password" not in replaced.json()


async def test_projection_on_create(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Users", params={"attributes": "userName"}, json=full_user("post@example.se")
    )
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"id", "schemas", "userName"}
    assert response.headers["Location"].endswith(f"/Users/{response.json()['id']}")
    response = await client.post(
        "/Users",
        params={"excludedAttributes": f"emails,meta,{ENTERPRISE}"},
        json=full_user("post2@example.se"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert "emails" not in body and "meta" not in body and ENTERPRISE not in body
    assert body["userName"] == "post2@example.se"
    assert body["id"]


async def test_projection_on_replace(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    body = full_user()
    body["displayName"] = "Barbara J"
    response = await client.put(
        f"/Users/{jensen['id']}", params={"attributes": "displayName,name.familyName"}, json=body
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": jensen["id"],
        "schemas": response.json()["schemas"],
        "displayName": "Barbara J",
        "name": {"familyName": "Jensen"},
    }
    response = await client.put(
        f"/Users/{jensen['id']}", params={"excludedAttributes": "emails"}, json=body
    )
    assert response.status_code == 200, response.text
    assert "emails" not in response.json()
    assert response.json()["displayName"] == "Barbara J"


async def test_projection_on_patch(client: httpx.AsyncClient, jensen: dict[str, Any]) -> None:
    response = await client.patch(
        f"/Users/{jensen['id']}",
        params={"attributes": "displayName"},
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "B"}],
        },
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id", "schemas", "displayName"}


async def test_user_groups_by_default_and_excluded(
    client: httpx.AsyncClient, jensen: dict[str, Any]
) -> None:
    group = await create_group(client, "Resenärer", [jensen["id"]])
    for user in await projections(client, jensen["id"]):
        assert [g["value"] for g in user["groups"]] == [group["id"]]
        assert user["groups"][0]["display"] == "Resenärer"
    for user in await projections(client, jensen["id"], excludedAttributes="groups"):
        assert "groups" not in user
        assert user["userName"] == "bjensen@example.se"
    for user in await projections(client, jensen["id"], attributes="groups.value"):
        assert user["groups"] == [{"value": group["id"]}]
    for user in await projections(client, jensen["id"], attributes="userName"):
        assert "groups" not in user


async def test_group_members_by_default_and_excluded(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice@x.se")
    bob = await create_user(client, "bob@x.se")
    group = await create_group(client, "Handläggare", [alice["id"], bob["id"]])
    assert sorted(m["value"] for m in group["members"]) == sorted([alice["id"], bob["id"]])

    by_id = (await client.get(f"/Groups/{group['id']}")).json()
    assert sorted(m["value"] for m in by_id["members"]) == sorted([alice["id"], bob["id"]])
    listed = await listing(client, "/Groups")
    assert len(listed["Resources"][0]["members"]) == 2
    searched = await searching(client, "/Groups/.search")
    assert len(searched["Resources"][0]["members"]) == 2

    excluded = await client.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert excluded.status_code == 200
    assert "members" not in excluded.json()
    assert excluded.json()["displayName"] == "Handläggare"
    listed = await listing(client, "/Groups", excludedAttributes="members")
    assert "members" not in listed["Resources"][0]
    searched = await searching(client, "/Groups/.search", excludedAttributes=["members"])
    assert "members" not in searched["Resources"][0]
    only_name = await listing(client, "/Groups", attributes="displayName")
    assert set(only_name["Resources"][0]) == {"id", "schemas", "displayName"}

    created = await client.post(
        "/Groups",
        params={"excludedAttributes": "members"},
        json={"schemas": [GROUP_SCHEMA], "displayName": "G2", "members": [{"value": bob["id"]}]},
    )
    assert created.status_code == 201
    assert "members" not in created.json()
    replaced = await client.put(
        f"/Groups/{group['id']}",
        params={"attributes": "members.value"},
        json={"schemas": [GROUP_SCHEMA], "displayName": "H", "members": [{"value": bob["id"]}]},
    )
    assert replaced.status_code == 200
    assert replaced.json() == {
        "id": group["id"],
        "schemas": [GROUP_SCHEMA],
        "members": [{"value": bob["id"]}],
    }
