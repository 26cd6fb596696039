"""Okta's SCIM 2.0 provisioning, replayed from its protocol reference: user import and
creation, GET-then-PUT updates, deactivation and password push by PATCH, and Group Push
(create, rename with the group's own id, members by PATCH, PUT with members, delete). The
HSA-id is an Okta custom attribute with the external namespace
``urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User``."""

from __future__ import annotations

import httpx

from tests.conftest import new_hsa_id
from tests.idp.conftest import BEHORIGHETER, CORE_GROUP, CORE_USER, listed, ok, patch, refused

PAGE = {"startIndex": 1, "count": 100}


def okta_user(user_name: str, given: str, family: str, hsa_id: str) -> dict[str, object]:
    """A user as Okta creates it: with a password, a locale and an empty groups list, on
    Okta's example domain (okta.local)."""
    return {
        "schemas": [CORE_USER, BEHORIGHETER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "sv-SE",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
        BEHORIGHETER: {"hsaId": hsa_id},
    }


async def test_a_users_life_as_okta_sends_it(client: httpx.AsyncClient) -> None:
    user_name = "test.user@okta.local"
    query = {"filter": f'userName eq "{user_name}"', **PAGE}
    assert listed(ok(await client.get("/Users", params=query))) == []
    body = okta_user(user_name, "Test", "User", new_hsa_id())
    created = ok(await client.post("/Users", json=body), 201)
    location = f"/Users/{created['id']}"
    assert "password" not in created
    assert created["emails"][0]["value"] == user_name
    assert [u["id"] for u in listed(ok(await client.get("/Users", params=query)))] == [
        created["id"]
    ]
    assert created["id"] in [u["id"] for u in listed(ok(await client.get("/Users", params=PAGE)))]

    # Profile changes: Okta reads the user, changes what changed and PUTs all of it back.
    current = ok(await client.get(location))
    current["name"]["familyName"] = "Användare"
    current["displayName"] = "Test Användare"
    replaced = ok(await client.put(location, json=current))
    assert replaced["name"]["familyName"] == "Användare"
    assert replaced["meta"]["version"] != current["meta"]["version"]

    # Password push, then deactivation (and reactivation), each a path-less replace.
    ok(await client.patch(location, json=patch({"op": "replace", "value": {"password": "n3w"}})))
    for active in (False, True):
        changed = ok(
            await client.patch(location, json=patch({"op": "replace", "value": {"active": active}}))
        )
        assert changed["active"] is active
    ok(await client.delete(location), 204)
    refused(await client.get(location), 404)


async def test_group_push_as_okta_sends_it(client: httpx.AsyncClient) -> None:
    users = [
        ok(
            await client.post(
                "/Users",
                json=okta_user(f"push{n}@okta.local", "Push", str(n), new_hsa_id())
                | {"externalId": f"00u{n}"},
            ),
            201,
        )
        for n in range(3)
    ]
    name = "Test SCIMv2"
    query = {"filter": f'displayName eq "{name}"', **PAGE}
    assert listed(ok(await client.get("/Groups", params=query))) == []
    group = ok(
        await client.post(
            "/Groups", json={"schemas": [CORE_GROUP], "displayName": name, "members": []}
        ),
        201,
    )
    location = f"/Groups/{group['id']}"
    assert [g["id"] for g in listed(ok(await client.get("/Groups", params=query)))] == [group["id"]]

    # Rename: the group's own id comes along; another id does not.
    rename = {"op": "replace", "value": {"id": group["id"], "displayName": "Test SCIMv2 nytt"}}
    ok(await client.patch(location, json=patch(rename)), 204)
    assert ok(await client.get(location))["displayName"] == "Test SCIMv2 nytt"
    other_id = {"op": "replace", "value": {"id": users[0]["id"], "displayName": "X"}}
    refused(await client.patch(location, json=patch(other_id)), 400, "mutability")

    # Members one operation at a time: added with their display, removed by a filter.
    add = {
        "op": "add",
        "path": "members",
        "value": [{"value": u["id"], "display": u["userName"]} for u in users],
    }
    ok(await client.patch(location, json=patch(add)), 204)
    remove = {"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'}
    ok(await client.patch(location, json=patch(remove)), 204)
    read = ok(await client.get(location))
    assert sorted(m["value"] for m in read["members"]) == sorted(u["id"] for u in users[1:])

    # Older Okta orgs push a group by PUT, members included, its id in the body.
    put = {
        "schemas": [CORE_GROUP],
        "id": group["id"],
        "displayName": "Test SCIMv2 nytt",
        "members": [{"value": users[0]["id"], "display": users[0]["userName"]}],
    }
    replaced = ok(await client.put(location, json=put))
    assert [m["value"] for m in replaced["members"]] == [users[0]["id"]]

    ok(await client.delete(location), 204)
    refused(await client.get(location), 404)
