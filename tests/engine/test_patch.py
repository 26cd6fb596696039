"""PATCH (RFC 7644 §3.5.2) through the HTTP API.

Normal attributes are patched by scim2-models; Group ``members`` operations are
run in SQL, one row per member. The last section checks that changing one member
of a large group never loads the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.hooks import Domain
from scim.service import search_keys
from scim.settings import Settings
from scim.storage.tables import members, resources, tenants
from tests.conftest import (
    ENTERPRISE,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Organisations,
    api_client,
    captured,
    create_group,
    patch_body,
)
from tests.engine.conftest import create_user, user_body

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MEMBERS_URN = f"{GROUP_SCHEMA}:members"


# -- helpers ------------------------------------------------------------------


async def fetch(client: httpx.AsyncClient, location: str) -> tuple[dict[str, Any], str]:
    """The full representation of a resource and its ETag."""
    response = await client.get(location)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["etag"]


async def send(
    client: httpx.AsyncClient,
    location: str,
    *operations: dict[str, Any],
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.patch(
        location, json=patch_body(*operations), headers=headers, params=params
    )


def assert_error(
    response: httpx.Response, status: int, scim_type: str | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A SCIM error body (RFC 7644 §3.12) with this status and, if given, scimType."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert isinstance(body.get("detail"), str) and body["detail"]
    if scim_type is not None:
        allowed = (scim_type,) if isinstance(scim_type, str) else scim_type
        assert body.get("scimType") in allowed, body
    return body


async def assert_unchanged(
    client: httpx.AsyncClient, location: str, before: tuple[dict[str, Any], str]
) -> None:
    """The resource reads exactly as before: same document, same version, same ETag."""
    document, tag = await fetch(client, location)
    assert tag == before[1]
    assert document["meta"]["version"] == before[0]["meta"]["version"]
    assert _normalised(document) == _normalised(before[0])


def _normalised(document: dict[str, Any]) -> dict[str, Any]:
    """Membership order is not significant (RFC 7643 §2.4)."""
    out = dict(document)
    for key in ("members", "groups", "emails"):
        if key in out:
            out[key] = sorted(out[key], key=lambda item: str(sorted(item.items())))
    return out


def member_ids(document: dict[str, Any]) -> set[str]:
    return {member["value"] for member in document.get("members", [])}


def group_ids(document: dict[str, Any]) -> set[str]:
    return {group["value"] for group in document.get("groups", [])}


def version(tag: str) -> int:
    assert tag.startswith('W/"') and tag.endswith('"'), tag
    return int(tag[3:-1])


async def find_users(client: httpx.AsyncClient, scim_filter: str) -> list[str]:
    response = await client.get("/Users", params={"filter": scim_filter})
    assert response.status_code == 200, response.text
    return [resource["id"] for resource in response.json()["Resources"]]


async def barbara(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    """The user of the RFC 7644 §3.5.2 examples."""
    return await create_user(
        client,
        "bjensen@example.com",
        name={"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
        displayName="Babs Jensen",
        title="Tour Guide",
        emails=[
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        addresses=[
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "primary": True,
            },
            {
                "type": "home",
                "streetAddress": "456 Hollywood Blvd",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
            },
        ],
        **extra,
    )


def emails_by_type(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {email.get("type"): email for email in document.get("emails", [])}


# -- 1. RFC 7644 §3.5.2 ---------------------------------------------------------


async def test_add_with_path(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client, f"/Users/{user['id']}", {"op": "add", "path": "nickName", "value": "Babs"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["nickName"] == "Babs"
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["nickName"] == "Babs"
    assert document["title"] == "Tour Guide"


async def test_add_without_path_merges_the_value_object(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {
            "op": "add",
            "value": {
                "nickName": "Babs",
                "emails": [{"value": "babs@example.org", "type": "other"}],
            },
        },
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["nickName"] == "Babs"
    assert document["displayName"] == "Babs Jensen"
    assert set(emails_by_type(document)) == {"work", "home", "other"}


async def test_add_to_multi_valued_attribute_merges(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "barbara@example.net", "type": "other"}],
        },
    )
    assert response.status_code == 200, response.text
    emails = emails_by_type(response.json())
    assert set(emails) == {"work", "home", "other"}
    assert emails["work"]["value"] == "bjensen@example.com"
    assert emails["other"]["value"] == "barbara@example.net"


async def test_replace_with_path(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "displayName", "value": "Barbara Jensen"},
        {"op": "replace", "path": "userName", "value": "barbara@example.com"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["displayName"] == "Barbara Jensen"
    assert document["userName"] == "barbara@example.com"
    # The search keys follow the document.
    assert await find_users(client, 'userName eq "BARBARA@example.com"') == [user["id"]]
    assert await find_users(client, 'userName eq "bjensen@example.com"') == []


async def test_replace_sub_attribute_of_filtered_entry(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "babs@example.com"},
    )
    assert response.status_code == 200, response.text
    emails = emails_by_type(response.json())
    assert emails["work"]["value"] == "babs@example.com"
    assert emails["work"]["primary"] is True
    assert emails["home"]["value"] == "babs@jensen.org"
    assert len(response.json()["emails"]) == 2


async def test_replace_filtered_complex_entry(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {
            "op": "replace",
            "path": 'addresses[type eq "work"]',
            "value": {
                "type": "work",
                "streetAddress": "911 Universal City Plaza",
                "postalCode": "91608",
            },
        },
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    addresses = {address["type"]: address for address in document["addresses"]}
    assert len(document["addresses"]) == 2
    assert addresses["work"]["streetAddress"] == "911 Universal City Plaza"
    # RFC 7644 §3.5.2.3: sub-attributes not in the value are left unchanged.
    assert addresses["work"]["locality"] == "Hollywood"
    assert addresses["home"]["streetAddress"] == "456 Hollywood Blvd"


async def test_replace_sub_attribute(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "name.givenName", "value": "Barb"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["name"]["givenName"] == "Barb"
    assert document["name"]["familyName"] == "Jensen"
    assert await find_users(client, 'name.givenName eq "barb"') == [user["id"]]


async def test_replace_complex_attribute_keeps_unnamed_sub_attributes(
    client: httpx.AsyncClient,
) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "name", "value": {"familyName": "Jensen-Smith"}},
    )
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    assert name["familyName"] == "Jensen-Smith"
    assert name["givenName"] == "Barbara"
    assert await find_users(client, 'name.familyName eq "jensen-smith"') == [user["id"]]


async def test_remove_single_valued_attribute(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(client, f"/Users/{user['id']}", {"op": "remove", "path": "title"})
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert "title" not in document
    assert document["displayName"] == "Babs Jensen"

    response = await send(client, f"/Users/{user['id']}", {"op": "remove", "path": "name"})
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert "name" not in document
    assert await find_users(client, 'name.familyName eq "Jensen"') == []


async def test_remove_sub_attribute(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client, f"/Users/{user['id']}", {"op": "remove", "path": "name.givenName"}
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert "givenName" not in document["name"]
    assert document["name"]["familyName"] == "Jensen"
    assert await find_users(client, 'name.givenName eq "Barbara"') == []


async def test_remove_entries_a_value_filter_selects(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client, f"/Users/{user['id']}", {"op": "remove", "path": 'emails[type eq "home"]'}
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert [email["value"] for email in document["emails"]] == ["bjensen@example.com"]


async def test_remove_whole_multi_valued_attribute(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(client, f"/Users/{user['id']}", {"op": "remove", "path": "emails"})
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert "emails" not in document
    assert len(document["addresses"]) == 2


async def test_extension_attribute_by_urn_path(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    department = f"{ENTERPRISE}:department"
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": department, "value": "Tour Operations"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document[ENTERPRISE]["department"] == "Tour Operations"
    assert ENTERPRISE in document["schemas"]

    response = await send(
        client, f"/Users/{user['id']}", {"op": "add", "path": department, "value": "Sales"}
    )
    assert response.status_code == 200, response.text
    assert response.json()[ENTERPRISE]["department"] == "Sales"

    response = await send(client, f"/Users/{user['id']}", {"op": "remove", "path": department})
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert "department" not in document.get(ENTERPRISE, {})


async def test_extension_attribute_in_pathless_value(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {
            "op": "add",
            "value": {
                ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
                "nickName": "Babs",
            },
        },
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document[ENTERPRISE]["employeeNumber"] == "701984"
    assert document[ENTERPRISE]["manager"]["value"] == "26118915"
    assert document["nickName"] == "Babs"
    assert ENTERPRISE in document["schemas"]

    # A later path-less add of another extension attribute keeps the first.
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "add", "value": {f"{ENTERPRISE}:department": "Tour Operations"}},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document[ENTERPRISE]["employeeNumber"] == "701984"
    assert document[ENTERPRISE]["department"] == "Tour Operations"


async def test_core_schema_urn_path(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": f"{USER_SCHEMA}:name.givenName", "value": "Barb"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"]["givenName"] == "Barb"


# -- 2. What identity providers send -----------------------------------------------


async def test_op_names_in_any_case(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "Replace", "path": "displayName", "value": "B. Jensen"},
        {"op": "ADD", "path": "nickName", "value": "Babs"},
        {"op": "Remove", "path": "title"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["displayName"] == "B. Jensen"
    assert document["nickName"] == "Babs"
    assert "title" not in document


async def test_booleans_as_strings(client: httpx.AsyncClient) -> None:
    user = await barbara(client, active=True)
    location = f"/Users/{user['id']}"
    response = await send(client, location, {"op": "Replace", "path": "active", "value": "False"})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    document, _ = await fetch(client, location)
    assert document["active"] is False
    assert await find_users(client, "active eq false") == [user["id"]]

    response = await send(client, location, {"op": "Replace", "value": {"active": "True"}})
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, location)
    assert document["active"] is True
    assert await find_users(client, "active eq true") == [user["id"]]


async def test_pathless_replace_with_dotted_keys(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client,
        f"/Users/{user['id']}",
        {
            "op": "Replace",
            "value": {
                "name.givenName": "Barb",
                "name.familyName": "Jensen-Smith",
            },
        },
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["name"]["givenName"] == "Barb"
    assert document["name"]["familyName"] == "Jensen-Smith"
    assert document["name"]["formatted"] == "Ms. Barbara J Jensen"
    assert await find_users(client, 'name.familyName eq "Jensen-Smith"') == [user["id"]]


async def test_pathless_replace_with_dotted_key_only(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await send(
        client, f"/Users/{user['id']}", {"op": "Replace", "value": {"name.givenName": "X"}}
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["name"] == {
        "givenName": "X",
        "familyName": "Jensen",
        "formatted": "Ms. Barbara J Jensen",
    }


async def test_entra_add_through_filter_on_absent_entry_creates_it(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(
        client, "entra@example.com", emails=[{"value": "home@example.org", "type": "home"}]
    )
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "work@example.com"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    emails = emails_by_type(document)
    assert emails["work"]["value"] == "work@example.com"
    assert emails["home"]["value"] == "home@example.org"
    assert len(document["emails"]) == 2

    # Sent again, it updates the entry it created instead of adding another.
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "work2@example.com"},
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert emails_by_type(document)["work"]["value"] == "work2@example.com"
    assert len(document["emails"]) == 2


async def test_entra_filter_on_user_without_the_attribute(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "bare@example.com")
    response = await send(
        client,
        f"/Users/{user['id']}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "work@example.com"},
        {
            "op": "Replace",
            "path": 'addresses[type eq "work"].streetAddress',
            "value": "1 Main St",
        },
    )
    assert response.status_code == 200, response.text
    document, _ = await fetch(client, f"/Users/{user['id']}")
    assert document["emails"] == [{"type": "work", "value": "work@example.com"}]
    assert document["addresses"] == [{"type": "work", "streetAddress": "1 Main St"}]


async def test_entra_remove_members_by_value_list(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    carol = await create_user(client, "carol")
    group = await create_group(client, "Staff", [alice["id"], bob["id"], carol["id"]])
    response = await send(
        client,
        f"/Groups/{group['id']}",
        {
            "op": "Remove",
            "path": "members",
            "value": [{"value": alice["id"]}, {"value": carol["id"]}],
        },
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, f"/Groups/{group['id']}")
    assert member_ids(document) == {bob["id"]}


async def test_entra_add_members_capitalised(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    response = await send(
        client,
        f"/Groups/{group['id']}",
        {"op": "Add", "path": "members", "value": [{"value": alice["id"]}]},
        {"op": "Replace", "path": "displayName", "value": "All staff"},
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, f"/Groups/{group['id']}")
    assert member_ids(document) == {alice["id"]}
    assert document["displayName"] == "All staff"


# -- 3. Errors ----------------------------------------------------------------------


async def test_replace_with_filter_matching_nothing_is_no_target(
    client: httpx.AsyncClient,
) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    # A filter that describes no entry (not only eq), so no policy creates one.
    for path in ('emails[value co "nowhere"].display', 'emails[type eq "a" or type eq "b"]'):
        value: Any = "x" if path.endswith("display") else {"value": "x@example.com"}
        response = await send(client, location, {"op": "replace", "path": path, "value": value})
        assert_error(response, 400, "noTarget")
        await assert_unchanged(client, location, before)


async def test_unknown_attribute_path_is_invalid_path(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    for operation in (
        {"op": "replace", "path": "shoeSize", "value": "42"},
        {"op": "add", "path": "name.middleInitial", "value": "J"},
        {"op": "remove", "path": f"{ENTERPRISE}:favouriteColour"},
        {"op": "replace", "path": 'emails[type eq "work"', "value": "x"},
    ):
        response = await send(client, location, operation)
        assert_error(response, 400, "invalidPath")
        await assert_unchanged(client, location, before)


async def test_a_filter_value_no_text_can_hold_is_invalid_filter(
    client: httpx.AsyncClient,
) -> None:
    """U+0000 and lone surrogates (written as the filter's escapes) in a path's value filter:
    a group's members are selected in SQL, which no such text may reach."""
    user = await barbara(client)
    group = await create_group(client, "Alla anställda", [user["id"]])
    for location, operation in (
        (f"/Groups/{group['id']}", {"op": "remove", "path": 'members[value eq "\\ud800"]'}),
        (f"/Groups/{group['id']}", {"op": "remove", "path": 'members[value eq "a\\u0000"]'}),
        (f"/Users/{user['id']}", {"op": "remove", "path": 'emails[type eq "\\udfff"]'}),
    ):
        before = await fetch(client, location)
        response = await send(client, location, operation)
        assert_error(response, 400, "invalidFilter")
        await assert_unchanged(client, location, before)


async def test_unknown_attribute_in_pathless_value_is_refused(
    client: httpx.AsyncClient,
) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    response = await send(client, location, {"op": "add", "value": {"shoeSize": "42"}})
    assert_error(response, 400, ("invalidValue", "invalidPath", "invalidSyntax"))
    await assert_unchanged(client, location, before)


async def test_read_only_attributes_are_refused(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    group = await create_group(client, "Staff", [user["id"]])
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    for operation in (
        {"op": "replace", "path": "id", "value": str(uuid.uuid4())},
        {"op": "replace", "path": "meta.version", "value": 'W/"99"'},
        {"op": "replace", "path": "meta", "value": {"resourceType": "Group"}},
        {"op": "add", "path": "groups", "value": [{"value": group["id"]}]},
        {"op": "remove", "path": "groups"},
        {"op": "replace", "value": {"id": str(uuid.uuid4())}},
    ):
        response = await send(client, location, operation)
        assert_error(response, 400, "mutability")
        await assert_unchanged(client, location, before)

    group_location = f"/Groups/{group['id']}"
    group_before = await fetch(client, group_location)
    response = await send(
        client, group_location, {"op": "replace", "path": "id", "value": str(uuid.uuid4())}
    )
    assert_error(response, 400, "mutability")
    await assert_unchanged(client, group_location, group_before)


async def test_invalid_value_type(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    for operation in (
        {"op": "replace", "path": "active", "value": "perhaps"},
        {"op": "replace", "path": "name", "value": 42},
        {"op": "add", "path": "emails", "value": [{"value": ["a", "b"]}]},
        {"op": "replace", "path": "displayName", "value": {"nested": "object"}},
    ):
        response = await send(client, location, operation)
        assert_error(response, 400, "invalidValue")
        await assert_unchanged(client, location, before)


async def test_removing_a_required_attribute_is_refused(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    response = await send(client, location, {"op": "remove", "path": "userName"})
    assert_error(response, 400, ("mutability", "invalidValue"))
    await assert_unchanged(client, location, before)


async def test_user_name_taken_is_uniqueness(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    await create_user(client, "taken@example.com")
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    response = await send(
        client, location, {"op": "replace", "path": "userName", "value": "TAKEN@example.com"}
    )
    assert_error(response, 409, "uniqueness")
    await assert_unchanged(client, location, before)


async def test_blank_required_string_is_refused(client: httpx.AsyncClient) -> None:
    """RFC 7643 §4.1.1: userName is non-empty; PATCH may not blank what POST may not."""
    user = await barbara(client)
    group = await create_group(client, "Staff")
    cases = {
        f"/Users/{user['id']}": [
            {"op": "replace", "path": "userName", "value": ""},
            {"op": "replace", "path": "userName", "value": "   "},
            {"op": "replace", "value": {"userName": ""}},
        ],
        f"/Groups/{group['id']}": [
            {"op": "replace", "path": "displayName", "value": ""},
            {"op": "replace", "path": "displayName", "value": "  "},
        ],
    }
    for location, operations in cases.items():
        before = await fetch(client, location)
        for operation in operations:
            response = await send(client, location, operation)
            assert_error(response, 400, ("invalidValue", "mutability"))
            await assert_unchanged(client, location, before)


async def test_values_too_long_for_the_search_keys_are_invalid_value(
    client: httpx.AsyncClient,
) -> None:
    """Indexed attributes are bounded columns: a longer value is invalidValue, never a 500."""
    user = await barbara(client)
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    long = "x" * 300
    cases = {
        f"/Users/{user['id']}": [
            {"op": "replace", "path": "userName", "value": long},
            {"op": "add", "path": "externalId", "value": long},
            {"op": "replace", "path": "displayName", "value": long},
            {"op": "replace", "path": "name.givenName", "value": long},
            {"op": "replace", "value": {"name": {"familyName": long}}},
        ],
        f"/Groups/{group['id']}": [
            {"op": "replace", "path": "displayName", "value": long},
            {"op": "add", "path": "members", "value": [{"value": alice["id"], "display": long}]},
        ],
    }
    for location, operations in cases.items():
        before = await fetch(client, location)
        for operation in operations:
            response = await send(client, location, operation)
            assert_error(response, 400, "invalidValue")
            await assert_unchanged(client, location, before)
    # 255 characters fit.
    response = await send(
        client, f"/Users/{user['id']}", {"op": "add", "path": "externalId", "value": "e" * 255}
    )
    assert response.status_code == 200, response.text


async def test_patch_schemas_are_checked_for_member_operations_too(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    for location, operation in (
        (f"/Users/{alice['id']}", {"op": "add", "path": "nickName", "value": "A"}),
        (f"/Groups/{group['id']}", {"op": "add", "path": "displayName", "value": "A"}),
        (
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
        ),
    ):
        before = await fetch(client, location)
        response = await client.patch(
            location, json={"schemas": [search], "Operations": [operation]}
        )
        assert_error(response, 400, ("invalidValue", "invalidSyntax"))
        await assert_unchanged(client, location, before)


async def test_malformed_operations(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    group = await create_group(client, "Staff", [user["id"]])
    for location in (f"/Users/{user['id']}", f"/Groups/{group['id']}"):
        before = await fetch(client, location)
        bodies: list[Any] = [
            patch_body(),
            {"schemas": patch_body()["schemas"]},
            {"schemas": patch_body()["schemas"], "Operations": {"op": "add"}},
            patch_body({"op": "move", "path": "displayName", "value": "x"}),
            patch_body({"op": "move", "path": "members", "value": [{"value": user["id"]}]}),
            patch_body({"op": "add", "path": "displayName"}),
            patch_body({"op": "remove"}),
            patch_body("add"),
        ]
        for body in bodies:
            response = await client.patch(location, json=body)
            assert_error(response, 400)
        await assert_unchanged(client, location, before)


async def test_empty_operations(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    response = await client.patch(f"/Users/{user['id']}", json=patch_body())
    assert_error(response, 400, ("invalidValue", "invalidSyntax"))


async def test_not_json_is_invalid_syntax(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    for content in (b'{"Operations": [', b"[]", b"null"):
        response = await client.patch(location, content=content)
        assert_error(response, 400, "invalidSyntax")
    await assert_unchanged(client, location, before)


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    response = await client.patch(
        location,
        content=b'{"Operations": [{"op": "remove", "path": "title"}]}',
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 415)
    await assert_unchanged(client, location, before)


async def test_patch_of_missing_resource_is_404(client: httpx.AsyncClient) -> None:
    for endpoint in ("Users", "Groups"):
        response = await send(
            client,
            f"/{endpoint}/{uuid.uuid4()}",
            {"op": "replace", "path": "displayName", "value": "x"},
        )
        assert_error(response, 404)
    # A User id is not a Group.
    user = await barbara(client)
    response = await send(
        client, f"/Groups/{user['id']}", {"op": "replace", "path": "displayName", "value": "x"}
    )
    assert_error(response, 404)


async def test_second_operation_failing_leaves_first_unapplied(
    client: httpx.AsyncClient,
) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    failures = (
        {"op": "replace", "path": "active", "value": "perhaps"},
        {"op": "replace", "path": 'emails[value co "nowhere"].display', "value": "x"},
        {"op": "replace", "path": "id", "value": "x"},
        {"op": "replace", "path": "shoeSize", "value": "42"},
    )
    for failure in failures:
        response = await send(
            client,
            location,
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "add", "path": "emails", "value": [{"value": "x@example.org"}]},
            failure,
        )
        assert_error(response, 400)
        await assert_unchanged(client, location, before)


async def test_group_patch_is_one_transaction(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    cases: list[list[dict[str, Any]]] = [
        # The name is written and a member added before the unknown member fails.
        [
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
            {"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]},
        ],
        [
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": group["id"]}]},
        ],
        [
            {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
            {"op": "replace", "path": "displayName", "value": {"not": "a string"}},
        ],
        [
            {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
            {"op": "replace", "path": "nope", "value": "x"},
        ],
        [
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "remove", "path": f'members[value eq "{alice["id"]}"].display'},
        ],
    ]
    for operations in cases:
        response = await send(client, location, *operations)
        assert_error(response, 400)
        await assert_unchanged(client, location, before)
    alice_document, _ = await fetch(client, f"/Users/{alice['id']}")
    assert group_ids(alice_document) == {group["id"]}
    bob_document, _ = await fetch(client, f"/Users/{bob['id']}")
    assert group_ids(bob_document) == set()


# -- 4. Responses -----------------------------------------------------------------------


async def test_user_patch_returns_the_resource_and_its_etag(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    _, tag = await fetch(client, location)
    response = await send(client, location, {"op": "replace", "path": "title", "value": "Boss"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["id"] == user["id"]
    assert body["schemas"] == [USER_SCHEMA]
    assert body["title"] == "Boss"
    assert body["userName"] == "bjensen@example.com"
    assert len(body["emails"]) == 2
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"].endswith(location)
    assert response.headers["etag"] == body["meta"]["version"]
    assert version(body["meta"]["version"]) == version(tag) + 1
    assert body["meta"]["lastModified"] >= user["meta"]["lastModified"]
    assert body["meta"]["created"] == user["meta"]["created"]
    document, read_tag = await fetch(client, location)
    assert read_tag == response.headers["etag"]
    assert document == body


async def test_patch_that_changes_nothing_keeps_the_version(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    location = f"/Users/{user['id']}"
    before = await fetch(client, location)
    response = await send(
        client, location, {"op": "replace", "path": "title", "value": "Tour Guide"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == before[1]
    await assert_unchanged(client, location, before)


async def test_user_patch_honours_attributes(client: httpx.AsyncClient) -> None:
    user = await barbara(client)
    group = await create_group(client, "Staff", [user["id"]])
    location = f"/Users/{user['id']}"
    response = await send(
        client,
        location,
        {"op": "replace", "path": "title", "value": "Boss"},
        params={"attributes": "userName"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "schemas": [USER_SCHEMA],
        "id": user["id"],
        "userName": "bjensen@example.com",
    }
    document, tag = await fetch(client, location)
    assert response.headers["etag"] == tag == document["meta"]["version"]
    assert document["title"] == "Boss"

    response = await send(
        client,
        location,
        {"op": "replace", "path": "title", "value": "Chief"},
        params={"excludedAttributes": "emails"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "emails" not in body
    assert body["title"] == "Chief"
    assert body["addresses"]
    assert group_ids(body) == {group["id"]}
    assert response.headers["etag"] == body["meta"]["version"]


async def test_group_patch_answers_204_with_etag(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    location = f"/Groups/{group['id']}"
    _, tag = await fetch(client, location)
    response = await send(
        client, location, {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert version(response.headers["etag"]) == version(tag) + 1
    document, read_tag = await fetch(client, location)
    assert read_tag == response.headers["etag"] == document["meta"]["version"]
    assert member_ids(document) == {alice["id"]}

    response = await send(
        client, location, {"op": "replace", "path": "displayName", "value": "Everyone"}
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    document, read_tag = await fetch(client, location)
    assert read_tag == response.headers["etag"]
    assert version(read_tag) == version(tag) + 2
    assert document["displayName"] == "Everyone"


async def test_group_patch_with_attributes_returns_the_projection(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    location = f"/Groups/{group['id']}"
    response = await send(
        client,
        location,
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
        params={"attributes": "displayName"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"schemas": [GROUP_SCHEMA], "id": group["id"], "displayName": "Staff"}
    document, tag = await fetch(client, location)
    assert response.headers["etag"] == tag
    assert member_ids(document) == {alice["id"]}

    response = await send(
        client,
        location,
        {"op": "replace", "path": "displayName", "value": "All"},
        params={"excludedAttributes": "members"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "members" not in body
    assert body["displayName"] == "All"
    assert response.headers["etag"] == body["meta"]["version"]


async def test_group_version_increases_on_member_change(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff")
    location = f"/Groups/{group['id']}"
    _, first = await fetch(client, location)
    response = await send(
        client, location, {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}
    )
    assert response.status_code == 204
    _, second = await fetch(client, location)
    assert version(second) > version(first)
    response = await send(
        client, location, {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}
    )
    assert response.status_code == 204
    document, third = await fetch(client, location)
    assert version(third) > version(second)
    assert document["meta"]["lastModified"] >= group["meta"]["lastModified"]
    assert "members" not in document or document["members"] == []


async def test_if_match(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    user = await barbara(client)
    group = await create_group(client, "Staff")
    user_location, group_location = f"/Users/{user['id']}", f"/Groups/{group['id']}"
    operations = {
        user_location: {"op": "replace", "path": "title", "value": "Boss"},
        group_location: {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
    }
    for location, operation in operations.items():
        before = await fetch(client, location)
        stale = f'W/"{version(before[1]) - 1}"'
        for header in (stale, '"not-a-version"', f'W/"{version(before[1]) + 1}"'):
            response = await send(client, location, operation, headers={"If-Match": header})
            assert_error(response, 412)
            await assert_unchanged(client, location, before)

        response = await send(
            client, location, operation, headers={"If-Match": f"{stale}, {before[1]}"}
        )
        assert response.status_code in (200, 204), response.text
        _, tag = await fetch(client, location)
        assert version(tag) == version(before[1]) + 1
        assert response.headers["etag"] == tag

        # The ETag of the response is the one the next conditional write sends.
        undo = (
            {"op": "remove", "path": "title"}
            if location == user_location
            else {"op": "remove", "path": "members"}
        )
        response = await send(client, location, undo, headers={"If-Match": tag})
        assert response.status_code in (200, 204), response.text
        response = await send(client, location, undo, headers={"If-Match": tag})
        assert_error(response, 412)
        response = await send(client, location, operation, headers={"If-Match": "*"})
        assert response.status_code in (200, 204), response.text


async def test_concurrent_patches_lose_no_update(client: httpx.AsyncClient) -> None:
    """Each PATCH reads, changes and writes under one lock: none overwrites another."""
    users = [await create_user(client, f"user{i}") for i in range(8)]
    group = await create_group(client, "Staff")
    target = await create_user(client, "target")
    group_location, user_location = f"/Groups/{group['id']}", f"/Users/{target['id']}"
    _, group_tag = await fetch(client, group_location)
    _, user_tag = await fetch(client, user_location)
    responses = await asyncio.gather(
        *(
            send(
                client,
                group_location,
                {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
            )
            for user in users
        ),
        *(
            send(
                client,
                user_location,
                {"op": "add", "path": "emails", "value": [{"value": f"u{i}@example.org"}]},
            )
            for i in range(8)
        ),
    )
    assert [response.status_code for response in responses] == [204] * 8 + [200] * 8
    document, tag = await fetch(client, group_location)
    assert member_ids(document) == {user["id"] for user in users}
    assert version(tag) == version(group_tag) + 8
    document, tag = await fetch(client, user_location)
    assert len(document["emails"]) == 8
    assert version(tag) == version(user_tag) + 8


# -- 5. Group members ---------------------------------------------------------------------


async def test_add_one_member(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice", displayName="Alice Ek")
    group = await create_group(client, "Staff")
    response = await send(
        client,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, f"/Groups/{group['id']}")
    [member] = document["members"]
    assert member["value"] == alice["id"]
    assert member["type"] == "User"
    assert member["display"] == "Alice Ek"
    assert member["$ref"].endswith(f"/Users/{alice['id']}")
    user_document, _ = await fetch(client, f"/Users/{alice['id']}")
    [membership] = user_document["groups"]
    assert membership["value"] == group["id"]
    assert membership["display"] == "Staff"
    assert membership["$ref"].endswith(f"/Groups/{group['id']}")


async def test_add_several_members_and_a_nested_group(client: httpx.AsyncClient) -> None:
    users = [await create_user(client, f"user{i}") for i in range(3)]
    nested = await create_group(client, "Nested")
    group = await create_group(client, "Staff")
    response = await send(
        client,
        f"/Groups/{group['id']}",
        {
            "op": "add",
            "path": "members",
            "value": [{"value": user["id"]} for user in users]
            + [{"value": nested["id"], "type": "Group"}],
        },
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, f"/Groups/{group['id']}")
    assert member_ids(document) == {user["id"] for user in users} | {nested["id"]}
    types = {member["value"]: member["type"] for member in document["members"]}
    assert types[nested["id"]] == "Group"
    assert types[users[0]["id"]] == "User"


async def test_add_existing_member_is_idempotent(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    response = await send(
        client,
        location,
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}, {"value": alice["id"]}]},
    )
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == before[1]
    await assert_unchanged(client, location, before)

    response = await send(
        client,
        location,
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}, {"value": bob["id"]}]},
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == {alice["id"], bob["id"]}
    assert len(document["members"]) == 2


async def test_add_unknown_member_is_invalid_value(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    for value in (
        [{"value": bob["id"]}, {"value": str(uuid.uuid4())}],
        [{"value": "not-a-uuid"}],
        "just a string",
        [{"display": "no value"}],
        [{"value": 42}],
    ):
        response = await send(client, location, {"op": "add", "path": "members", "value": value})
        assert_error(response, 400, "invalidValue")
        await assert_unchanged(client, location, before)


async def test_add_group_to_itself_is_refused(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    for operation in (
        {"op": "add", "path": "members", "value": [{"value": group["id"]}]},
        {"op": "replace", "path": "members", "value": [{"value": group["id"]}]},
        {"op": "add", "value": {"members": [{"value": group["id"]}]}},
    ):
        response = await send(client, location, operation)
        assert_error(response, 400, "invalidValue")
        await assert_unchanged(client, location, before)


async def test_members_of_another_tenant_are_unknown(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    group = await create_group(client, "Staff")
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    foreign = str(uuid.uuid4())
    async with engine.begin() as connection:
        existing = (await connection.execute(select(tenants.c.id).where(tenants.c.id == 2))).first()
        if existing is None:
            await connection.execute(insert(tenants).values(id=2, name="Other"))
        await connection.execute(insert(resources).values(**_user_row(foreign, "x", tenant_id=2)))
    response = await send(
        client, location, {"op": "add", "path": "members", "value": [{"value": foreign}]}
    )
    assert_error(response, 400, "invalidValue")
    await assert_unchanged(client, location, before)


async def test_replace_all_members(client: httpx.AsyncClient) -> None:
    alice, bob, carol = [await create_user(client, name) for name in ("alice", "bob", "carol")]
    group = await create_group(client, "Staff", [alice["id"], bob["id"]])
    location = f"/Groups/{group['id']}"
    response = await send(
        client,
        location,
        {
            "op": "replace",
            "path": "members",
            "value": [{"value": bob["id"]}, {"value": carol["id"]}],
        },
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == {bob["id"], carol["id"]}
    alice_document, _ = await fetch(client, f"/Users/{alice['id']}")
    assert group_ids(alice_document) == set()

    # Replacing with what is there is no change.
    before = await fetch(client, location)
    response = await send(
        client,
        location,
        {
            "op": "replace",
            "path": "members",
            "value": [{"value": carol["id"]}, {"value": bob["id"]}],
        },
    )
    assert response.status_code == 204, response.text
    document, tag = await fetch(client, location)
    assert member_ids(document) == {bob["id"], carol["id"]}
    assert tag == before[1], "the same members, in another order, are no new version"

    response = await send(client, location, {"op": "replace", "path": "members", "value": []})
    assert response.status_code == 204, response.text
    document, tag = await fetch(client, location)
    assert member_ids(document) == set()
    assert version(tag) > version(before[1])


async def test_remove_member_by_value_filter(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"], bob["id"]])
    location = f"/Groups/{group['id']}"
    response = await send(
        client, location, {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == {bob["id"]}
    alice_document, _ = await fetch(client, f"/Users/{alice['id']}")
    assert "groups" not in alice_document or alice_document["groups"] == []
    bob_document, _ = await fetch(client, f"/Users/{bob['id']}")
    assert group_ids(bob_document) == {group["id"]}

    # The fully qualified path, and a member that is not there (nothing to do).
    before = await fetch(client, location)
    response = await send(
        client, location, {"op": "remove", "path": f'{MEMBERS_URN}[value eq "{alice["id"]}"]'}
    )
    assert response.status_code == 204, response.text
    await assert_unchanged(client, location, before)
    response = await send(
        client, location, {"op": "remove", "path": f'{MEMBERS_URN}[value eq "{bob["id"]}"]'}
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == set()


async def test_remove_members_by_type(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    nested = await create_group(client, "Nested")
    group = await create_group(client, "Staff", [alice["id"], bob["id"], nested["id"]])
    location = f"/Groups/{group['id']}"
    response = await send(client, location, {"op": "remove", "path": 'members[type eq "User"]'})
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == {nested["id"]}


async def test_remove_members_by_combined_filter(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    carol = await create_user(client, "carol")
    group = await create_group(client, "Staff", [alice["id"], bob["id"], carol["id"]])
    location = f"/Groups/{group['id']}"
    response = await send(
        client,
        location,
        {
            "op": "remove",
            "path": f'members[value eq "{alice["id"]}" or value eq "{carol["id"]}"]',
        },
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == {bob["id"]}


async def test_remove_all_members(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"], bob["id"]])
    location = f"/Groups/{group['id']}"
    response = await send(client, location, {"op": "remove", "path": "members"})
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert member_ids(document) == set()
    assert document["displayName"] == "Staff"
    for user in (alice, bob):
        user_document, _ = await fetch(client, f"/Users/{user['id']}")
        assert group_ids(user_document) == set()
    # The users themselves are untouched.
    assert (await client.get(f"/Users/{alice['id']}")).status_code == 200


async def test_pathless_add_applies_members_and_attributes(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    bob = await create_user(client, "bob")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    _, tag = await fetch(client, location)
    response = await send(
        client,
        location,
        {"op": "add", "value": {"members": [{"value": bob["id"]}], "displayName": "New"}},
    )
    assert response.status_code == 204, response.text
    document, new_tag = await fetch(client, location)
    assert document["displayName"] == "New"
    assert member_ids(document) == {alice["id"], bob["id"]}
    assert version(new_tag) == version(tag) + 1
    bob_document, _ = await fetch(client, f"/Users/{bob['id']}")
    assert bob_document["groups"][0]["display"] == "New"

    response = await send(
        client,
        location,
        {"op": "Replace", "value": {"Members": [{"value": alice["id"]}], "displayName": "Old"}},
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert document["displayName"] == "Old"
    assert member_ids(document) == {alice["id"]}
    assert await _group_names(client, 'displayName eq "old"') == [group["id"]]


async def _group_names(client: httpx.AsyncClient, scim_filter: str) -> list[str]:
    response = await client.get("/Groups", params={"filter": scim_filter})
    assert response.status_code == 200, response.text
    return [resource["id"] for resource in response.json()["Resources"]]


async def test_member_sub_attribute_writes_are_refused(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    group = await create_group(client, "Staff", [alice["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    for operation in (
        {"op": "replace", "path": f'members[value eq "{alice["id"]}"].display', "value": "A"},
        {"op": "add", "path": f'members[value eq "{alice["id"]}"].display', "value": "A"},
        {"op": "replace", "path": "members.display", "value": "A"},
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"].display'},
        {"op": "replace", "path": f'members[value eq "{alice["id"]}"]', "value": {"value": "x"}},
    ):
        response = await send(client, location, operation)
        assert_error(response, 400, ("mutability", "invalidPath", "noTarget"))
        await assert_unchanged(client, location, before)


async def test_user_groups_follow_membership(client: httpx.AsyncClient) -> None:
    alice = await create_user(client, "alice")
    staff = await create_group(client, "Staff")
    admins = await create_group(client, "Admins")
    alice_location = f"/Users/{alice['id']}"
    for group in (staff, admins):
        response = await send(
            client,
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
        )
        assert response.status_code == 204
    document, _ = await fetch(client, alice_location)
    assert group_ids(document) == {staff["id"], admins["id"]}
    assert {group["display"] for group in document["groups"]} == {"Staff", "Admins"}
    assert await find_users(client, f'groups.value eq "{admins["id"]}"') == [alice["id"]]

    response = await send(
        client,
        f"/Groups/{staff['id']}",
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
    )
    assert response.status_code == 204
    document, _ = await fetch(client, alice_location)
    assert group_ids(document) == {admins["id"]}
    assert await find_users(client, f'groups.value eq "{staff["id"]}"') == []


# -- 6. A large group ---------------------------------------------------------------------

LARGE = 5_000


def _user_row(resource_id: str, user_name: str, tenant_id: int = 1) -> dict[str, Any]:
    now = datetime.now(UTC)
    data = {"schemas": [USER_SCHEMA], "userName": user_name}
    return {
        "tenant_id": tenant_id,
        "id": resource_id,
        "resource_type": "User",
        "created": now,
        "last_modified": now,
        "version": 1,
        "data": data,
        **search_keys(data),
    }


async def _large_group(client: httpx.AsyncClient, engine: AsyncEngine) -> tuple[str, list[str]]:
    """A group of LARGE users, written in two bulk inserts."""
    group = await create_group(client, "Everyone")
    ids = [str(uuid.uuid4()) for _ in range(LARGE)]
    async with engine.begin() as connection:
        await connection.execute(
            insert(resources),
            [_user_row(member_id, f"bulk{i}@example.se") for i, member_id in enumerate(ids)],
        )
        await connection.execute(
            insert(members),
            [
                {"tenant_id": 1, "group_id": group["id"], "member_id": member_id, "display": None}
                for member_id in ids
            ],
        )
    return group["id"], ids


async def _membership_count(engine: AsyncEngine, group_id: str) -> int:
    async with engine.connect() as connection:
        statement = select(func.count()).select_from(members).where(members.c.group_id == group_id)
        return int((await connection.execute(statement)).scalar_one())


def _aggregates(statements: list[str]) -> list[str]:
    return [s for s in statements if "json_group_array" in s.lower() or "jsonb_agg" in s.lower()]


async def test_large_group_member_changes_touch_one_row(
    client: httpx.AsyncClient, engine: AsyncEngine, app: Litestar
) -> None:
    group_id, ids = await _large_group(client, engine)
    newcomer = await create_user(client, "newcomer@example.se")
    location = f"/Groups/{group_id}"
    assert await _membership_count(engine, group_id) == LARGE
    app_engine: AsyncEngine = app.state.engine

    with captured(engine, app_engine) as statements:
        response = await send(
            client, location, {"op": "add", "path": "members", "value": [{"value": newcomer["id"]}]}
        )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert statements, "the listener saw nothing"
    assert _aggregates(statements) == []
    assert len(statements) <= 8, statements
    assert await _membership_count(engine, group_id) == LARGE + 1

    for operation in (
        {"op": "remove", "path": f'members[value eq "{ids[17]}"]'},
        {"op": "Remove", "path": "members", "value": [{"value": ids[42]}]},
    ):
        with captured(engine, app_engine) as statements:
            response = await send(client, location, operation)
        assert response.status_code == 204, response.text
        assert statements
        assert _aggregates(statements) == []
        assert len(statements) <= 8, statements
    assert await _membership_count(engine, group_id) == LARGE - 1

    # A projection without members reads no membership either.
    with captured(engine, app_engine) as statements:
        response = await client.get(location, params={"excludedAttributes": "members"})
    assert response.status_code == 200, response.text
    assert "members" not in response.json()
    assert statements
    assert _aggregates(statements) == []

    with captured(engine, app_engine) as statements:
        response = await send(
            client,
            location,
            {"op": "replace", "path": "displayName", "value": "All of us"},
            params={"attributes": "displayName"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "All of us"
    assert _aggregates(statements) == []

    # The listener does see the aggregate when members are asked for.
    with captured(engine, app_engine) as statements:
        response = await client.get(location)
    assert response.status_code == 200, response.text
    assert len(response.json()["members"]) == LARGE - 1
    assert _aggregates(statements)


async def test_a_value_of_the_wrong_type_is_named_as_scim_names_it(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client, "typed@example.se")
    for path, value, detail in (
        ("nickName", [{"type": []}], "nickName: Input should be a valid string"),
        ("active", "maybe", "active: Input should be a valid boolean"),
        ("name.givenName", 5, "givenName: Input should be a valid string"),
    ):
        response = await client.patch(
            f"/Users/{user['id']}", json=patch_body({"op": "replace", "path": path, "value": value})
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["scimType"] == "invalidValue"
        # Not pydantic's report: no Python field names, class names or links.
        assert detail in body["detail"], body["detail"]
        assert "_" not in body["detail"].split(":")[0] and "pydantic" not in body["detail"]


# -- 7. Many member operations in one PATCH --------------------------------------------------


def _remove_by_filter(member_id: str) -> dict[str, Any]:
    return {"op": "remove", "path": f'members[value eq "{member_id}"]'}


def _remove_by_value(*member_ids: str) -> dict[str, Any]:
    # As Microsoft Entra ID sends it: a value list and no filter.
    return {"op": "remove", "path": "members", "value": [{"value": i} for i in member_ids]}


async def test_runs_of_member_operations_are_a_few_statements(
    client: httpx.AsyncClient, engine: AsyncEngine, app: Litestar
) -> None:
    """As many member operations as a PATCH may hold cost a few statements, not one or
    two each: the write holds its transaction (on SQLite, the database's write lock) for
    a moment however long the list."""
    group_id, ids = await _large_group(client, engine)
    location = f"/Groups/{group_id}"
    operations = [_remove_by_filter(member_id) for member_id in ids[:998]]
    operations.append(_remove_by_value(*ids[998:2000]))
    operations.append(
        {"op": "remove", "path": f'members[value eq "{ids[2000]}" or display eq "nobody"]'}
    )
    assert len(operations) == 1000
    with captured(engine, app.state.engine) as statements:
        response = await send(client, location, *operations)
    assert response.status_code == 204, response.text
    assert len(statements) <= 12, len(statements)
    assert await _membership_count(engine, group_id) == LARGE - 2001
    document, _ = await fetch(client, location)
    assert {member["value"] for member in document["members"]} == set(ids[2001:])


async def test_thousands_of_new_members_in_one_operation(
    client: httpx.AsyncClient, engine: AsyncEngine, app: Litestar
) -> None:
    """More new members than one INSERT holds (the drivers bound its parameters) all go in,
    in a few statements; those already there stay as they are."""
    group_id, ids = await _large_group(client, engine)
    async with engine.begin() as connection:
        taken_out = members.c.member_id.in_(ids[:3000])
        await connection.execute(delete(members).where(members.c.group_id == group_id, taken_out))
    add = {"op": "add", "path": "members", "value": [{"value": i} for i in ids[:3010]]}
    with captured(engine, app.state.engine) as statements:
        response = await send(client, f"/Groups/{group_id}", add)
    assert response.status_code == 204, response.text
    assert await _membership_count(engine, group_id) == LARGE
    # 3,010 rows: up to 1,000 to a statement, or all in one (PostgreSQL's arrays).
    inserts = [s for s in statements if "INSERT INTO members" in s]
    assert 1 <= len(inserts) <= 4, inserts
    document, _ = await fetch(client, f"/Groups/{group_id}")
    assert {member["value"] for member in document["members"]} == set(ids)


async def test_member_operations_keep_their_order(client: httpx.AsyncClient) -> None:
    """Runs of like operations are merged; what a PATCH does is still each operation in
    turn (RFC 7644 §3.5.2)."""
    users = [await create_user(client, f"order{n}@example.se") for n in range(5)]
    a, b, c, d, e = (user["id"] for user in users)
    group = await create_group(client, "Ordered", [a, b])
    location = f"/Groups/{group['id']}"

    def add(*member_ids: str) -> dict[str, Any]:
        return {"op": "add", "path": "members", "value": [{"value": i} for i in member_ids]}

    response = await send(
        client,
        location,
        add(c),
        _remove_by_filter(c),  # added, then removed
        _remove_by_filter(a),
        add(a),  # removed, then added back
        {"op": "replace", "path": "members", "value": [{"value": d}]},
        add(e),  # after a replace: kept with it
        add(b),
        _remove_by_value(b),
    )
    assert response.status_code == 204, response.text
    document, _ = await fetch(client, location)
    assert {member["value"] for member in document["members"]} == {d, e}


async def test_a_patch_holds_at_most_max_patch_operations(
    client: httpx.AsyncClient, app: Litestar
) -> None:
    limit = app.state.settings.max_patch_operations
    user = await create_user(client, "many@example.se")
    group = await create_group(client, "Many", [user["id"]])
    location = f"/Groups/{group['id']}"
    before = await fetch(client, location)
    rename = {"op": "replace", "path": "displayName", "value": "Renamed"}
    response = await send(client, location, *[rename] * limit, _remove_by_filter(user["id"]))
    assert_error(response, 413, "tooMany")
    assert str(limit) in response.json()["detail"]
    await assert_unchanged(client, location, before)
    response = await send(client, location, *[rename] * (limit - 1), _remove_by_filter(user["id"]))
    assert response.status_code == 204, response.text
    # Advertised where a client can read it before sending: the OpenAPI document.
    served = await client.get(str(client.base_url.join("/openapi.json")))
    patch_op = served.json()["components"]["schemas"]["PatchOp"]
    assert patch_op["properties"]["Operations"]["maxItems"] == limit


@pytest.fixture
async def roomy(settings: Settings, clean: None) -> AsyncIterator[Litestar]:
    """The engine with the default body limit (4 MB), room for the largest PATCH."""
    app = create_app(replace(settings, max_payload_size=4 * 1024 * 1024), Domain())
    yield app
    await app.state.engine.dispose()


async def test_one_operation_adds_more_members_than_a_statement_takes_parameters(
    roomy: Litestar, engine: AsyncEngine, organisations: Organisations
) -> None:
    """12,000 members in one add (564 kB): more rows than one INSERT may bind (32,766
    parameters in SQLite) are written in several."""
    async with api_client(roomy, organisations.stockholm.token) as client:
        group = await create_group(client, "Twelve thousand")
        ids = [str(uuid.uuid4()) for _ in range(12_000)]
        async with engine.begin() as connection:
            rows = [_user_row(member_id, f"many{n}@example.se") for n, member_id in enumerate(ids)]
            await connection.execute(insert(resources), rows)
        location = f"/Groups/{group['id']}"
        add = {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
        response = await send(client, location, add)
        assert response.status_code == 204, response.text
        assert await _membership_count(engine, group["id"]) == 12_000
        response = await send(client, location, _remove_by_value(*ids))
        assert response.status_code == 204, response.text
        assert await _membership_count(engine, group["id"]) == 0


async def test_a_big_member_patch_does_not_hold_up_another_organisation(
    roomy: Litestar, engine: AsyncEngine, organisations: Organisations
) -> None:
    """Another organisation writes while one removes 5,000 members in one PATCH: both
    are answered, neither with 503 (on SQLite they share one write lock)."""
    async with (
        api_client(roomy, organisations.stockholm.token) as client,
        api_client(roomy, organisations.goteborg.token) as other,
    ):
        group_id, ids = await _large_group(client, engine)
        operations = [_remove_by_filter(member_id) for member_id in ids[:999]]
        operations.append(_remove_by_value(*ids[999:]))

        async def meanwhile() -> list[int]:
            statuses = []
            for n in range(5):
                response = await other.post("/Users", json=user_body(f"meanwhile{n}@goteborg.se"))
                statuses.append(response.status_code)
            return statuses

        big, statuses = await asyncio.gather(
            send(client, f"/Groups/{group_id}", *operations), meanwhile()
        )
    assert big.status_code == 204, big.text
    assert statuses == [201] * 5
    assert await _membership_count(engine, group_id) == 0


async def test_many_operations_applied_ahead_lose_no_update_made_meanwhile(
    client: httpx.AsyncClient, app: Litestar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATCH of many operations is applied before its transaction (on PostgreSQL every
    PATCH of a user is, and written in one statement without one); a write that lands in
    between is not lost: the operations are applied again to what it wrote."""
    user = await create_user(client, "ahead@example.se", title="Before")
    location = f"/Users/{user['id']}"
    service = app.state.service
    applied_ahead = service._patched_ahead
    interleaved: list[int] = []
    sent: list[bool] = []

    async def and_meanwhile(*args: Any) -> Any:
        result = await applied_ahead(*args)
        if not sent:  # the PATCH sent here is applied ahead too
            sent.append(True)
            response = await send(
                client, location, {"op": "replace", "path": "title", "value": "Meanwhile"}
            )
            interleaved.append(response.status_code)
        return result

    monkeypatch.setattr(service, "_patched_ahead", and_meanwhile)
    operations = [
        {"op": "add", "path": "emails", "value": [{"value": f"e{n}@example.se", "type": "other"}]}
        for n in range(20)
    ]
    response = await send(client, location, *operations)
    assert response.status_code == 200, response.text
    assert interleaved == [200]
    document, etag = await fetch(client, location)
    assert document["title"] == "Meanwhile"
    assert len(document["emails"]) == 20
    assert etag == 'W/"3"'
