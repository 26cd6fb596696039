"""Effective permissions: a user's own and its groups', for e-services under agreement;
entitlements mirror them for clients that only know the core schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.hooks import Tenant
from scim.operator import Operator
from scim.service import Caller, ResourceService, Stored
from tests.conftest import (
    ENSAMKOMMANDE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    STATLIG,
    Organisations,
    create_user,
    new_hsa_id,
    patch_body,
    user_body,
)

GRUND = f"{STATLIG}:grundersattning"
HEMTJANST = f"{STATLIG}:hemtjanst-for-nyanlanda"
BARN = f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare"
EFFECTIVE = f"{ESERVICES}:effectivePermissions"


async def person(client: httpx.AsyncClient, name: str, *values: str) -> dict[str, Any]:
    extension = {"hsaId": new_hsa_id(), "permissions": [{"value": v} for v in values]}
    return await create_user(client, name, **{ESERVICES: extension})


async def group(client: httpx.AsyncClient, name: str, members: list[str], *values: str) -> str:
    body = {
        "schemas": [GROUP_SCHEMA, ESERVICES_GROUP],
        "displayName": name,
        "members": [{"value": member} for member in members],
        ESERVICES_GROUP: {"permissions": [{"value": v} for v in values]},
    }
    response = await client.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    return group_id


async def effective(client: httpx.AsyncClient, user_id: str) -> dict[str, str]:
    """value -> source ("direct" or the group id)."""
    response = await client.get(f"/Users/{user_id}", params={"attributes": EFFECTIVE})
    assert response.status_code == 200
    items = response.json().get(ESERVICES, {}).get("effectivePermissions", [])
    return {item["value"]: item["source"] for item in items}


async def filtered(client: httpx.AsyncClient, expression: str) -> set[str]:
    response = await client.get("/Users", params={"filter": expression, "attributes": "userName"})
    assert response.status_code == 200, response.text
    return {user["userName"] for user in response.json()["Resources"]}


async def test_own_and_group_permissions_with_their_source(client: httpx.AsyncClient) -> None:
    anna = await person(client, "anna", GRUND)
    team = await group(client, "Team", [anna["id"]], GRUND, HEMTJANST)
    assert await effective(client, anna["id"]) == {GRUND: "direct", HEMTJANST: team}


async def test_returned_only_when_asked_and_mirrored_as_entitlements(
    client: httpx.AsyncClient,
) -> None:
    anna = await person(client, "anna", GRUND)
    await group(client, "Team", [anna["id"]], HEMTJANST)
    plain = (await client.get(f"/Users/{anna['id']}")).json()
    assert "effectivePermissions" not in plain[ESERVICES]
    assert plain[ESERVICES]["permissions"] == [{"value": GRUND}]
    assert sorted(plain["entitlements"], key=lambda e: e["value"]) == [
        {"value": GRUND, "display": "Grundersättning", "type": STATLIG},
        {"value": HEMTJANST, "display": "Hemtjänst för nyanlända", "type": STATLIG},
    ]
    assert all("permissions" not in membership for membership in plain["groups"])
    named = await client.get(f"/Users/{anna['id']}", params={"attributes": f"{EFFECTIVE}.display"})
    assert {i["display"] for i in named.json()[ESERVICES]["effectivePermissions"]} == {
        "Grundersättning",
        "Hemtjänst för nyanlända",
    }


async def test_joining_and_leaving_a_group_changes_them_at_once_without_rewriting_users(
    client: httpx.AsyncClient,
) -> None:
    anna = await person(client, "anna")
    bo = await person(client, "bo")
    team = await group(client, "Team", [bo["id"]], HEMTJANST)
    add = patch_body({"op": "add", "path": "members", "value": [{"value": anna["id"]}]})
    assert (await client.patch(f"/Groups/{team}", json=add)).status_code == 204
    assert await effective(client, anna["id"]) == {HEMTJANST: team}
    remove = patch_body({"op": "remove", "path": f'members[value eq "{anna["id"]}"]'})
    assert (await client.patch(f"/Groups/{team}", json=remove)).status_code == 204
    assert await effective(client, anna["id"]) == {}
    # The group's permissions change for every member; no user is rewritten.
    change = patch_body(
        {"op": "replace", "path": f"{ESERVICES_GROUP}:permissions", "value": [{"value": GRUND}]}
    )
    assert (await client.patch(f"/Groups/{team}", json=change)).status_code == 204
    assert await effective(client, bo["id"]) == {GRUND: team}
    assert (await client.get(f"/Users/{bo['id']}")).json()["meta"]["version"] == 'W/"1"'


async def test_a_permission_without_agreement_is_held_but_not_effective(
    client: httpx.AsyncClient, app: Any, organisations: Organisations, engine: AsyncEngine
) -> None:
    anna = await person(client, "anna", GRUND, BARN)
    assert set(await effective(client, anna["id"])) == {GRUND, BARN}
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.set_agreements(tenant, [STATLIG])
    try:
        # Credentials carry the organisation's agreements: a new request sees the change.
        read = await client.get(f"/Users/{anna['id']}", params={"attributes": EFFECTIVE})
        assert [i["value"] for i in read.json()[ESERVICES]["effectivePermissions"]] == [GRUND]
        held = (await client.get(f"/Users/{anna['id']}")).json()
        assert {p["value"] for p in held[ESERVICES]["permissions"]} == {GRUND, BARN}
        assert [e["value"] for e in held["entitlements"]] == [GRUND]
        assert await filtered(client, f'{EFFECTIVE}.value eq "{BARN}"') == set()
        assert await filtered(client, f'{ESERVICES}:permissions.value eq "{BARN}"') == {"anna"}
    finally:
        async with engine.begin() as connection:
            operator = Operator(connection, "tests")
            tenant = await operator.tenant(organisations.stockholm.org_number)
            await operator.set_agreements(tenant, [STATLIG, ENSAMKOMMANDE])


async def test_filters_select_on_effective_permissions(client: httpx.AsyncClient) -> None:
    anna = await person(client, "anna", GRUND)
    bo = await person(client, "bo")
    await person(client, "cilla")
    await group(client, "Team", [bo["id"], anna["id"]], HEMTJANST)
    assert await filtered(client, f'{EFFECTIVE}.value eq "{HEMTJANST}"') == {"anna", "bo"}
    assert await filtered(client, f'{EFFECTIVE}[value eq "{GRUND}"]') == {"anna"}
    assert await filtered(client, f'{EFFECTIVE}[service eq "{STATLIG}"]') == {"anna", "bo"}
    assert await filtered(client, f"{EFFECTIVE} pr") == {"anna", "bo"}
    assert await filtered(client, f"not ({EFFECTIVE} pr)") == {"cilla"}
    assert await filtered(client, f'{EFFECTIVE}.value ne "{GRUND}"') == {"bo", "cilla"}
    assert await filtered(client, f'userName sw "a" and {EFFECTIVE} pr') == {"anna"}


async def test_entitlements_and_effective_permissions_are_read_only(
    client: httpx.AsyncClient,
) -> None:
    anna = await person(client, "anna")
    for path in ("entitlements", EFFECTIVE):
        response = await client.patch(
            f"/Users/{anna['id']}",
            json=patch_body({"op": "add", "path": path, "value": [{"value": GRUND}]}),
        )
        assert response.status_code == 400
        assert response.json()["scimType"] == "mutability"
    assert await effective(client, anna["id"]) == {}


async def test_a_write_answers_with_the_user_as_a_read_after_it_shows_it(
    client: httpx.AsyncClient,
) -> None:
    """POST, PATCH and PUT answer with the user as stored, without reading it back: its
    groups and the permissions they give are those read with the lock (a user's write
    cannot change them; a new user is in none), its meta that of the write. What they
    answer is what a GET then shows, attribute by attribute, with the same ETag; asked for
    some attributes, those."""
    for params in ({}, {"attributes": f"userName,{EFFECTIVE}"}):
        extension = {"hsaId": new_hsa_id(), "permissions": [{"value": GRUND}]}
        body = user_body(f"posted.{len(params)}", **{ESERVICES: extension})
        created = await client.post("/Users", json=body, params=params)
        assert created.status_code == 201, created.text
        read = await client.get(f"/Users/{created.json()['id']}", params=params)
        assert created.json() == read.json()
        assert created.headers["ETag"] == read.headers["ETag"]
    anna = await person(client, "anna.answered", GRUND)
    team = await group(client, "Answered", [anna["id"]], HEMTJANST)
    path = f"/Users/{anna['id']}"

    async def answered_as_read(
        method: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> str:
        written = await client.request(method, path, json=body, params=params or {})
        assert written.status_code == 200, written.text
        read = await client.get(path, params=params or {})
        assert written.json() == read.json()
        assert written.headers["ETag"] == read.headers["ETag"]
        return str(read.headers["ETag"])

    given = {"op": "replace", "path": "name.givenName", "value": "Anna"}
    first = await answered_as_read("PATCH", patch_body(given))
    replaced = dict((await client.get(path)).json(), displayName="Anna A")
    second = await answered_as_read("PUT", replaced)
    assert second != first
    assert await answered_as_read("PUT", replaced) == second  # the same again: no change
    await answered_as_read(
        "PATCH", patch_body({**given, "value": "Annie"}), {"attributes": EFFECTIVE}
    )
    shown = (await client.get(path)).json()
    assert [g["value"] for g in shown["groups"]] == [team]
    assert shown["name"]["givenName"] == "Annie" and shown["displayName"] == "Anna A"
    assert await effective(client, anna["id"]) == {GRUND: "direct", HEMTJANST: team}


async def test_rendering_leaves_the_document_as_stored(app: Litestar) -> None:
    """The domain adds a user's effective permissions to the representation it answers with,
    not to the stored document it was made from (a write compares that with what it writes)."""
    service: ResourceService = app.state.service
    users = service.registry.by_name["User"]
    granted = {"value": GRUND, "service": STATLIG, "permission": "grundersattning"}
    data = {
        "userName": "visad@kommun.se",
        ESERVICES: {"hsaId": new_hsa_id(), "permissions": [granted]},
    }
    stored = json.loads(json.dumps(data))
    now = datetime.now(UTC)
    row = Stored("a-user", stored, now, now, 1, [])
    caller = Caller(Tenant(1, "kommun", frozenset({STATLIG})), "https://scim.example/scim/v2")
    shown = service.render(caller, users, row, service.plan(users, None, None))
    # Entitlements mirror the effective permissions the domain added.
    assert [item["value"] for item in shown["entitlements"]] == [GRUND]
    assert stored == data
