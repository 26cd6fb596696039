"""Writes in one statement (PostgreSQL): a user's POST, a PATCH of any resource but a
group, and a PATCH that adds members to a group, is written with its audit record by one
statement that is its own transaction (``ResourceService._created_alone``,
``_written_alone``, ``_members_added_alone``). Where that cannot be (a key taken, another
request wrote first, no such group) the transaction makes the write, with its answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.tables import audit_log
from tests.conftest import GROUP_SCHEMA, captured, patch_body
from tests.engine.conftest import create_user, user_body


@pytest.fixture(autouse=True)
def postgres_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes in a transaction: it has no statement that writes two tables")


async def actions(engine: AsyncEngine, resource_id: str) -> list[str]:
    """The audit log's actions on a resource, oldest first."""
    async with engine.connect() as connection:
        statement = (
            select(audit_log.c.action)
            .where(audit_log.c.resource_id == resource_id)
            .order_by(audit_log.c.id)
        )
        return list((await connection.execute(statement)).scalars())


def writes(statements: list[str]) -> list[str]:
    return [s for s in statements if not s.lstrip().upper().startswith("SELECT")]


async def test_a_user_is_created_and_patched_by_one_statement_each_with_its_record(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    with captured(app.state.engine) as seen:
        user = await create_user(client, "ensam@example.se", name={"givenName": "Ada"})
    (written,) = writes(seen)
    assert written.startswith("WITH written AS \n(INSERT INTO resources"), written
    assert user["meta"]["version"] == 'W/"1"'
    location = f"/Users/{user['id']}"

    with captured(app.state.engine) as seen:
        response = await client.patch(
            location,
            json=patch_body({"op": "replace", "path": "name.givenName", "value": "Beda"}),
        )
    assert response.status_code == 200, response.text
    assert response.json()["name"]["givenName"] == "Beda"
    assert response.headers["etag"] == 'W/"2"'
    assert len(writes(seen)) == 1 and "UPDATE resources" in writes(seen)[0], seen

    read = (await client.get(location)).json()
    assert read["name"]["givenName"] == "Beda"
    assert read["meta"] == response.json()["meta"]
    assert await actions(engine, user["id"]) == ["User.create", "User.patch"]

    # A PATCH that changes nothing writes nothing, not even a record.
    with captured(app.state.engine) as seen:
        same = await client.patch(
            location,
            json=patch_body({"op": "replace", "path": "name.givenName", "value": "Beda"}),
        )
    assert same.status_code == 200 and same.headers["etag"] == 'W/"2"'
    assert writes(seen) == []
    assert await actions(engine, user["id"]) == ["User.create", "User.patch"]


async def test_a_refused_write_leaves_nothing_and_says_why(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first = await create_user(client, "forst@example.se")
    second = await create_user(client, "andra@example.se")
    taken = await client.post("/Users", json=user_body("FORST@example.se"))
    assert taken.status_code == 409, taken.text
    assert taken.json()["scimType"] == "uniqueness"

    response = await client.patch(
        f"/Users/{second['id']}",
        json=patch_body({"op": "replace", "path": "userName", "value": "forst@example.se"}),
    )
    assert response.status_code == 409 and response.json()["scimType"] == "uniqueness"
    assert await actions(engine, second["id"]) == ["User.create"]
    assert await actions(engine, first["id"]) == ["User.create"]

    stale = await client.patch(
        f"/Users/{second['id']}",
        json=patch_body({"op": "replace", "path": "title", "value": "Ny"}),
        headers={"If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412, stale.text
    missing = await client.patch(
        "/Users/00000000-0000-0000-0000-000000000000",
        json=patch_body({"op": "replace", "path": "title", "value": "Ny"}),
    )
    assert missing.status_code == 404, missing.text
    assert await actions(engine, second["id"]) == ["User.create"]


async def test_concurrent_patches_of_one_user_lose_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Twenty PATCHes of one user at once, each adding an address: each is read and applied
    before its write, which writes nothing if another wrote first; the transaction then
    applies it again to what that one wrote."""
    user = await create_user(client, "trangt@example.se")
    location = f"/Users/{user['id']}"

    async def add(n: int) -> httpx.Response:
        email: dict[str, Any] = {"value": f"e{n}@example.se", "type": "other"}
        return await client.patch(
            location, json=patch_body({"op": "add", "path": "emails", "value": [email]})
        )

    responses = await asyncio.gather(*(add(n) for n in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    read = (await client.get(location)).json()
    assert sorted(e["value"] for e in read["emails"]) == sorted(
        f"e{n}@example.se" for n in range(20)
    )
    assert read["meta"]["version"] == 'W/"21"'
    assert sorted(r.headers["etag"] for r in responses) == sorted(f'W/"{n}"' for n in range(2, 22))
    assert await actions(engine, user["id"]) == ["User.create"] + ["User.patch"] * 20


async def test_a_put_is_one_statement_and_a_write_between_its_read_and_write_is_seen(
    app: Litestar,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PUT (Okta's update) is made on the version read and written by one statement; where
    another request writes between the two, the transaction replaces what that one wrote."""
    user = await create_user(client, "ersatt@example.se", title="Före")
    location = f"/Users/{user['id']}"
    body = user_body("ersatt@example.se", title="Efter", displayName="Ersatt")
    with captured(app.state.engine) as seen:
        response = await client.put(location, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert len(writes(seen)) == 1 and "UPDATE resources" in writes(seen)[0], seen
    with captured(app.state.engine) as seen:
        same = await client.put(location, json=body)
    assert same.status_code == 200 and same.headers["etag"] == 'W/"2"'
    assert writes(seen) == []

    service = app.state.service
    alone = service._written_alone
    sent: list[int] = []

    async def and_meanwhile(*args: Any, **options: Any) -> Any:
        if not sent:
            sent.append(0)
            meanwhile = await client.patch(
                location, json=patch_body({"op": "replace", "path": "title", "value": "Under"})
            )
            sent.append(meanwhile.status_code)
        return await alone(*args, **options)

    monkeypatch.setattr(service, "_written_alone", and_meanwhile)
    body = user_body("ersatt@example.se", title="Sist", displayName="Ersatt")
    response = await client.put(location, json=body)
    assert sent == [0, 200]
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"4"'
    read = (await client.get(location)).json()
    assert (read["title"], read["displayName"], read["meta"]["version"]) == (
        "Sist",
        "Ersatt",
        'W/"4"',
    )
    assert read["meta"]["created"] == user["meta"]["created"]
    assert await actions(engine, user["id"]) == [
        "User.create",
        "User.replace",
        "User.patch",
        "User.replace",
    ]


async def create_group(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": name})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def adding(*member_ids: str) -> dict[str, Any]:
    value = [{"value": member_id} for member_id in member_ids]
    return patch_body({"op": "add", "path": "members", "value": value})


async def test_members_are_added_by_one_statement_with_the_groups_version_and_record(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    group = await create_group(client, "Handläggare")
    location = f"/Groups/{group['id']}"
    first, second = [await create_user(client, f"medlem{n}@example.se") for n in range(2)]

    with captured(app.state.engine) as seen:
        response = await client.patch(location, json=adding(first["id"]))
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == 'W/"2"'
    (written,) = writes(seen)
    assert written.startswith("WITH grp AS"), written
    read = (await client.get(location)).json()
    assert [m["value"] for m in read["members"]] == [first["id"]]
    assert read["meta"]["version"] == 'W/"2"'
    assert read["meta"]["lastModified"] > group["meta"]["lastModified"]

    # A member the group has already, with a new one: the new one is added, once.
    response = await client.patch(location, json=adding(first["id"], second["id"], second["id"]))
    assert response.status_code == 204 and response.headers["etag"] == 'W/"3"'
    # Members it has already change nothing: no new version, no record.
    again = await client.patch(location, json=adding(second["id"], first["id"]))
    assert again.status_code == 204 and again.headers["etag"] == 'W/"3"'
    read = (await client.get(location)).json()
    assert sorted(m["value"] for m in read["members"]) == sorted([first["id"], second["id"]])
    assert read["meta"]["version"] == 'W/"3"'
    assert await actions(engine, group["id"]) == ["Group.create", "Group.patch", "Group.patch"]


async def test_concurrent_member_adds_to_one_group_each_get_their_own_version(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Twenty clients add a member each to one group at once: the statements queue on the
    group's row, and each bumps the version it finds."""
    group = await create_group(client, "Alla")
    users = [await create_user(client, f"samtidig{n}@example.se") for n in range(20)]
    location = f"/Groups/{group['id']}"
    responses = await asyncio.gather(
        *(client.patch(location, json=adding(user["id"])) for user in users)
    )
    assert [r.status_code for r in responses] == [204] * 20
    assert sorted(r.headers["etag"] for r in responses) == sorted(f'W/"{n}"' for n in range(2, 22))
    read = (await client.get(location)).json()
    assert sorted(m["value"] for m in read["members"]) == sorted(user["id"] for user in users)
    assert read["meta"]["version"] == 'W/"21"'
    assert await actions(engine, group["id"]) == ["Group.create"] + ["Group.patch"] * 20


async def test_a_member_add_the_statement_cannot_make_is_the_transactions(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """No such group, an If-Match, a representation asked for, a member that is not there,
    other operations beside: the transaction answers, as it would without the statement."""
    group = await create_group(client, "Villkor")
    user = await create_user(client, "villkor@example.se")
    location = f"/Groups/{group['id']}"

    missing = await client.patch(
        "/Groups/00000000-0000-0000-0000-000000000000", json=adding(user["id"])
    )
    assert missing.status_code == 404, missing.text
    unknown = await client.patch(location, json=adding("00000000-0000-0000-0000-000000000001"))
    assert unknown.status_code == 400 and unknown.json()["scimType"] == "invalidValue"
    stale = await client.patch(location, json=adding(user["id"]), headers={"If-Match": 'W/"9"'})
    assert stale.status_code == 412, stale.text
    with captured(app.state.engine) as seen:
        shown = await client.patch(
            location, params={"attributes": "members"}, json=adding(user["id"])
        )
    assert shown.status_code == 200, shown.text
    assert [m["value"] for m in shown.json()["members"]] == [user["id"]]
    assert not any(s.startswith("WITH grp AS") for s in writes(seen)), seen
    renamed = patch_body(
        {"op": "replace", "path": "displayName", "value": "Omdöpt"},
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    response = await client.patch(location, json=renamed)
    assert response.status_code == 204, response.text
    read = (await client.get(location)).json()
    assert read["displayName"] == "Omdöpt" and read["meta"]["version"] == 'W/"3"'
    assert await actions(engine, group["id"]) == ["Group.create", "Group.patch", "Group.patch"]


async def test_members_are_removed_by_one_statement_as_entra_and_okta_send_it(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Entra ID removes with a value list, Okta with ``members[value eq "…"]``: each is one
    statement, which takes a new version and a record only where a member went."""
    group = await create_group(client, "Avgående")
    location = f"/Groups/{group['id']}"
    users = [await create_user(client, f"avgar{n}@example.se") for n in range(4)]
    assert (await client.patch(location, json=adding(*(u["id"] for u in users)))).status_code == 204

    entra = patch_body({"op": "Remove", "path": "members", "value": [{"value": users[0]["id"]}]})
    okta = patch_body({"op": "remove", "path": f'members[value eq "{users[1]["id"]}"]'})
    for body, version in ((entra, 3), (okta, 4)):
        with captured(app.state.engine) as seen:
            response = await client.patch(location, json=body)
        assert response.status_code == 204, response.text
        assert response.headers["etag"] == f'W/"{version}"'
        (written,) = writes(seen)
        assert written.startswith("WITH grp AS") and "DELETE FROM members" in written, written
    # A member it does not have: nothing changes.
    again = await client.patch(location, json=entra)
    assert again.status_code == 204 and again.headers["etag"] == 'W/"4"'
    read = (await client.get(location)).json()
    assert sorted(m["value"] for m in read["members"]) == sorted(u["id"] for u in users[2:])
    assert read["meta"]["version"] == 'W/"4"'
    assert await actions(engine, group["id"]) == ["Group.create"] + ["Group.patch"] * 3

    # Adding and removing in one PATCH is the transaction's: in order, as RFC 7644 §3.5.2 has.
    both = patch_body(
        {"op": "add", "path": "members", "value": [{"value": users[0]["id"]}]},
        {"op": "remove", "path": "members", "value": [{"value": users[2]["id"]}]},
    )
    with captured(app.state.engine) as seen:
        response = await client.patch(location, json=both)
    assert response.status_code == 204, response.text
    assert not any(s.startswith("WITH grp AS") for s in writes(seen)), seen
    read = (await client.get(location)).json()
    assert sorted(m["value"] for m in read["members"]) == sorted([users[0]["id"], users[3]["id"]])
    assert read["meta"]["version"] == 'W/"5"'


async def test_concurrent_removals_and_adds_of_one_group_each_get_their_own_version(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    group = await create_group(client, "Rörligt")
    location = f"/Groups/{group['id']}"
    leaving = [await create_user(client, f"lamnar{n}@example.se") for n in range(10)]
    joining = [await create_user(client, f"kommer{n}@example.se") for n in range(10)]
    await client.patch(location, json=adding(*(u["id"] for u in leaving)))

    def removing(member_id: str) -> dict[str, Any]:
        return patch_body({"op": "remove", "path": "members", "value": [{"value": member_id}]})

    responses = await asyncio.gather(
        *(client.patch(location, json=removing(u["id"])) for u in leaving),
        *(client.patch(location, json=adding(u["id"])) for u in joining),
    )
    assert [r.status_code for r in responses] == [204] * 20
    assert sorted(r.headers["etag"] for r in responses) == sorted(f'W/"{n}"' for n in range(3, 23))
    read = (await client.get(location)).json()
    assert sorted(m["value"] for m in read["members"]) == sorted(u["id"] for u in joining)
    assert read["meta"]["version"] == 'W/"22"'
    assert await actions(engine, group["id"]) == ["Group.create"] + ["Group.patch"] * 21
