"""Microsoft Entra ID's provisioning service, replayed from its documentation ("Develop and
plan provisioning for a SCIM endpoint", its request and response examples, and the
attribute mapping of custom extension attributes): the requests it sends for a user's and a
group's life, in the order it sends them, with the HSA-id mapped to
``urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User:hsaId``."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import STATLIG, new_hsa_id
from tests.idp.conftest import (
    BEHORIGHETER,
    BEHORIGHETER_GROUP,
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    listed,
    ok,
    patch,
    refused,
)

ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def entra_user(user_name: str, given: str, family: str, hsa_id: str) -> dict[str, object]:
    """A user as Entra creates it: the enterprise extension in ``schemas``, the custom one
    only as data, an object id as externalId, an empty roles list and a meta it sets."""
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": user_name,
        "active": True,
        "addresses": [],
        "displayName": f"{given} {family}",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "phoneNumbers": [],
        "roles": [],
        "title": "Handläggare",
        ENTERPRISE: {"employeeNumber": "1001", "department": "Socialtjänsten"},
        BEHORIGHETER: {"hsaId": hsa_id},
    }


async def test_a_users_life_as_entra_sends_it(client: httpx.AsyncClient) -> None:
    user_name = "ada.lind@stockholm.se"
    body = entra_user(user_name, "Ada", "Lind", new_hsa_id())

    # Does the user exist? By the matching attribute, then by the object id.
    for query in (f'userName eq "{user_name}"', f'externalId eq "{body["externalId"]}"'):
        assert listed(ok(await client.get("/Users", params={"filter": query}))) == []
    created = ok(await client.post("/Users", json=body), 201)
    location = f"/Users/{created['id']}"
    assert created[BEHORIGHETER]["hsaId"] == body[BEHORIGHETER]["hsaId"]  # type: ignore[index]
    assert BEHORIGHETER in created["schemas"]
    assert created["externalId"] == body["externalId"]
    # The second create of the same user (Entra retries after a timeout) is a conflict.
    refused(await client.post("/Users", json=body), 409, "uniqueness")

    for query in (f'userName eq "{user_name}"', f'externalId eq "{body["externalId"]}"'):
        found = listed(ok(await client.get("/Users", params={"filter": query})))
        assert [user["id"] for user in found] == [created["id"]]
    assert ok(await client.get(location))["userName"] == user_name

    # Multi-valued properties: the work address as a filtered path, sent as Add.
    ok(
        await client.patch(
            location,
            json=patch(
                {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ada@stockholm.se"},
                {"op": "Replace", "path": "name.familyName", "value": "Lind-Berg"},
            ),
        )
    )
    read = ok(await client.get(location))
    assert [e["value"] for e in read["emails"] if e.get("type") == "work"] == ["ada@stockholm.se"]
    assert read["name"]["familyName"] == "Lind-Berg"

    # Single-valued properties, one by one, and several at once without a path, with dotted
    # and extension-URN keys.
    ok(
        await client.patch(
            location,
            json=patch({"op": "Replace", "path": "userName", "value": "ada.lindberg@stockholm.se"}),
        )
    )
    hsa_id = new_hsa_id()
    ok(
        await client.patch(
            location,
            json=patch(
                {
                    "op": "Replace",
                    "value": {
                        "displayName": "Ada Lind-Berg",
                        "name.givenName": "Adelina",
                        f"{ENTERPRISE}:department": "Skolförvaltningen",
                        f"{BEHORIGHETER}:hsaId": hsa_id,
                    },
                }
            ),
        )
    )
    read = ok(await client.get(location))
    assert read["userName"] == "ada.lindberg@stockholm.se"
    assert read["name"]["givenName"] == "Adelina" and read["displayName"] == "Ada Lind-Berg"
    assert read[ENTERPRISE]["department"] == "Skolförvaltningen"
    assert read[BEHORIGHETER]["hsaId"] == hsa_id

    # The manager, as a bare id; then removed.
    boss = ok(
        await client.post(
            "/Users", json=entra_user("chef@stockholm.se", "Cecilia", "Chef", new_hsa_id())
        ),
        201,
    )
    manager_path = f"{ENTERPRISE}:manager"
    ok(
        await client.patch(
            location, json=patch({"op": "Add", "path": manager_path, "value": boss["id"]})
        )
    )
    manager = ok(await client.get(location))[ENTERPRISE]["manager"]
    assert manager["value"] == boss["id"]
    assert manager["$ref"].endswith(f"/Users/{boss['id']}")
    ok(await client.patch(location, json=patch({"op": "Remove", "path": manager_path})))
    assert "manager" not in ok(await client.get(location))[ENTERPRISE]

    # Disabled: "False" as a string (Entra before its SCIM compliance flag), then false.
    for value in ("False", False):
        ok(
            await client.patch(
                location, json=patch({"op": "Replace", "path": "active", "value": value})
            )
        )
        assert ok(await client.get(location))["active"] is False
        ok(
            await client.patch(
                location, json=patch({"op": "Replace", "path": "active", "value": True})
            )
        )

    ok(await client.delete(location), 204)
    refused(await client.get(location), 404)


async def test_a_groups_life_as_entra_sends_it(client: httpx.AsyncClient) -> None:
    members = [
        ok(
            await client.post(
                "/Users",
                json=entra_user(f"medlem{n}@stockholm.se", "Medlem", str(n), new_hsa_id()),
            ),
            201,
        )["id"]
        for n in range(3)
    ]
    body = {
        "schemas": [CORE_GROUP, ADSCIM_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": "Handläggare barn och unga",
        "meta": {"resourceType": "Group"},
    }
    query = {"excludedAttributes": "members", "filter": f'displayName eq "{body["displayName"]}"'}
    assert listed(ok(await client.get("/Groups", params=query))) == []
    created = ok(await client.post("/Groups", json=body), 201)
    location = f"/Groups/{created['id']}"
    found = listed(ok(await client.get("/Groups", params=query)))
    assert [group["id"] for group in found] == [created["id"]] and "members" not in found[0]
    # Entra finds groups by displayName: a second group of that name would be ambiguous.
    refused(await client.post("/Groups", json={**body, "externalId": "x"}), 409, "uniqueness")

    ok(
        await client.patch(
            location,
            json=patch({"op": "Replace", "path": "displayName", "value": "Handläggare BoU"}),
        ),
        204,
    )
    add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": m} for m in members]}
    ok(await client.patch(location, json=patch(add)), 204)
    remove = {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": members[0]}]}
    ok(await client.patch(location, json=patch(remove)), 204)
    read = ok(await client.get(location))
    assert read["displayName"] == "Handläggare BoU"
    assert sorted(member["value"] for member in read["members"]) == sorted(members[1:])

    # Entra cannot send permissions; the organisation's administrator gives them to the
    # group (the browser client does it over this same API, as a PATCH of the group).
    grant = {
        "op": "add",
        "path": f"{BEHORIGHETER_GROUP}:permissions",
        "value": [{"value": f"{STATLIG}:grundersattning"}],
    }
    ok(await client.patch(location, json=patch(grant)), 204)
    member = ok(await client.get(f"/Users/{members[1]}"))
    assert f"{STATLIG}:grundersattning" in [e["value"] for e in member.get("entitlements", [])]

    ok(await client.delete(location), 204)
    refused(await client.get(location), 404)
