"""Creating, reading, replacing and deleting resources (RFC 7644 §3.3, §3.4.1, §3.5.1, §3.6),
versioning (§3.14), errors (§3.12) and tenant scoping."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.service import search_keys
from scim.storage.repository import Repository
from scim.storage.tables import members, resources
from tests.conftest import (
    ENTERPRISE,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Organisations,
    create_group,
    patch_body,
)
from tests.engine.conftest import create_user, user_body

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert ERROR in body["schemas"]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


async def count_resources(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return len((await connection.execute(select(resources.c.id))).all())


# -- create -------------------------------------------------------------------


async def test_create_returns_201_with_location_etag_and_meta(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Users",
        json=user_body(
            "Anna.Ek@example.se",
            name={"givenName": "Anna", "familyName": "Ek"},
            emails=[{"value": "anna.ek@example.se", "type": "work", "primary": True}],
            externalId="ext-1",
            **{"schemas": [USER_SCHEMA, ENTERPRISE], ENTERPRISE: {"department": "Ekonomi"}},
        ),
    )
    assert response.status_code == 201
    user = response.json()
    assert response.headers["location"] == user["meta"]["location"]
    assert user["meta"]["location"] == f"http://scim.test/scim/v2/Users/{user['id']}"
    assert response.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["created"] == user["meta"]["lastModified"]
    assert datetime.fromisoformat(user["meta"]["created"]) <= datetime.now(UTC)
    assert user["userName"] == "Anna.Ek@example.se"
    assert user["externalId"] == "ext-1"
    assert user[ENTERPRISE] == {"department": "Ekonomi"}
    assert "password" not in user


async def test_dates_are_written_in_utc_with_z(client: httpx.AsyncClient) -> None:
    """RFC 7643 §2.3.5 and §3.1: meta's dates are xsd:dateTime, written here in UTC with
    "Z", the same in a POST's answer, a read and a list, on either database."""
    created = await create_user(client, "tid@example.se")
    read = (await client.get(f"/Users/{created['id']}")).json()
    found = await client.get("/Users", params={"filter": 'userName eq "tid@example.se"'})
    listed = found.json()["Resources"][0]
    for meta in (created["meta"], read["meta"], listed["meta"]):
        for name in ("created", "lastModified"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", meta[name])
            assert meta[name] == created["meta"][name]


async def test_create_ignores_read_only_attributes(client: httpx.AsyncClient) -> None:
    group = await create_group(client, "Handläggare")
    user = await create_user(
        client,
        "ro@example.se",
        id="chosen-by-client",
        meta={"created": "2001-01-01T00:00:00Z", "version": 'W/"99"'},
        groups=[{"value": group["id"]}],
    )
    assert user["id"] != "chosen-by-client"
    uuid.UUID(user["id"])
    assert user["meta"]["version"] == 'W/"1"'
    assert not user["meta"]["created"].startswith("2001")
    assert "groups" not in user


@pytest.mark.parametrize(
    ("first", "second"),
    [("anna@example.se", "ANNA@example.se"), ("åsa.öberg", "ÅSA.ÖBERG")],
)
async def test_user_name_is_unique_case_insensitively(
    client: httpx.AsyncClient, engine: AsyncEngine, first: str, second: str
) -> None:
    await create_user(client, first)
    response = await client.post("/Users", json=user_body(second))
    assert_error(response, 409, "uniqueness")
    assert await count_resources(engine) == 1


async def test_concurrent_creates_of_one_user_name_have_one_winner(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/Users", json=user_body(f"{'Race' if i % 2 else 'race'}@example.se"))
            for i in range(6)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert await count_resources(engine) == 1


# SQLite writes one transaction at a time: the delete would wait for the create to end.
@pytest.mark.skipif(
    not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
)
async def test_a_member_deleted_while_a_group_is_created_is_refused_not_a_500(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup saw the member; it was deleted before the insert (the foreign key fails):
    the create looks again and refuses as if it had come after the delete."""
    member = await create_user(client, "soon.gone@example.se")
    looked_up = Repository.existing

    async def before_the_delete(repository: Repository, ids: Any) -> Any:
        monkeypatch.setattr(Repository, "existing", looked_up)
        found = await looked_up(repository, ids)
        assert (await client.delete(f"/Users/{member['id']}")).status_code == 204
        return found

    monkeypatch.setattr(Repository, "existing", before_the_delete)
    body = {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": member["id"]}]}
    response = await client.post("/Groups", json=body)
    assert_error(response, 400, "invalidValue")
    assert member["id"] in response.json()["detail"]
    assert await count_resources(engine) == 0


@pytest.mark.skipif(
    not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_a_member_deleted_while_it_is_added_is_refused_not_a_500(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    """As for a create: the write is tried again, and refuses the member it no longer finds."""
    member = await create_user(client, "soon.gone@example.se")
    group = (
        await client.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "G"})
    ).json()
    looked_up = Repository.existing

    async def before_the_delete(repository: Repository, ids: Any) -> Any:
        monkeypatch.setattr(Repository, "existing", looked_up)
        found = await looked_up(repository, ids)
        async with engine.begin() as connection:  # another request deletes the member
            await connection.execute(delete(resources).where(resources.c.id == member["id"]))
        return found

    monkeypatch.setattr(Repository, "existing", before_the_delete)
    adding = [{"value": member["id"]}]
    if method == "PATCH":
        body = patch_body({"op": "add", "path": "members", "value": adding})
    else:
        body = {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": adding}
    response = await client.request(method, f"/Groups/{group['id']}", json=body)
    assert_error(response, 400, "invalidValue")
    assert member["id"] in response.json()["detail"]
    assert "members" not in (await client.get(f"/Groups/{group['id']}")).json()


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_an_id_holding_u0000_names_no_resource(
    client: httpx.AsyncClient, method: str
) -> None:
    """PostgreSQL's text cannot hold U+0000: such an id is unknown (404), not a 500."""
    body: dict[str, Any] = (
        patch_body({"op": "replace", "path": "displayName", "value": "X"})
        if method == "PATCH"
        else user_body("nul@example.se")
    )
    response = await client.request(
        method, "/Users/a%00b", json=None if method in ("GET", "DELETE") else body
    )
    assert_error(response, 404)


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"schemas": [USER_SCHEMA]}, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": ""}, "invalidValue"),
        (
            {"schemas": [USER_SCHEMA], "userName": "x", "emails": [{"value": "not-an-email"}]},
            "invalidValue",
        ),
        ({"schemas": [USER_SCHEMA], "userName": "x", "active": "maybe"}, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": "x", "favouriteColour": "blå"}, "invalidSyntax"),
    ],
)
async def test_invalid_user_is_400_and_nothing_is_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], scim_type: str
) -> None:
    assert_error(await client.post("/Users", json=body), 400, scim_type)
    assert await count_resources(engine) == 0


async def test_body_that_is_not_json_is_invalid_syntax(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/Users", content=b'{"userName": '), 400, "invalidSyntax")
    assert_error(await client.post("/Users", content=b"[1, 2]"), 400, "invalidSyntax")


async def test_body_of_another_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Users",
        content=b"userName=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 415)


async def test_plain_application_json_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Users", json=user_body("json@example.se"), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201


async def test_oversized_body_is_413_with_the_limit(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = user_body("big@example.se", nickName="x" * (300 * 1024))
    response = await client.post("/Users", json=body)
    assert_error(response, 413)
    assert str(256 * 1024) in response.json()["detail"]
    assert await count_resources(engine) == 0


async def test_an_endless_body_is_refused_as_soon_as_it_passes_the_limit(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """A body sent in chunks with no Content-Length is read only up to maxPayloadSize: past
    it the answer is 413, and the rest is never read."""
    chunks = 0

    async def endless() -> Any:
        nonlocal chunks
        while True:
            chunks += 1
            yield b" " * 65536

    response = await client.post("/Users", content=endless())
    assert_error(response, 413)
    assert str(256 * 1024) in response.json()["detail"]
    assert chunks == 256 * 1024 // 65536 + 1
    assert await count_resources(engine) == 0


async def test_a_client_gone_mid_body_is_answered_400_and_nothing_is_stored(
    app: Any, clean: None, organisations: Organisations, engine: AsyncEngine
) -> None:
    """The ASGI server tells of a client that went away before its body ended: the request
    is refused as one whose body is broken, never a 500."""
    messages = iter(
        [
            {"type": "http.request", "body": b'{"schemas": [', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    token = organisations.stockholm.token
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/scim/v2/Users",
        "raw_path": b"/scim/v2/Users",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"scim.test"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/scim+json"),
        ],
        "server": ("scim.test", 80),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert await count_resources(engine) == 0


async def test_text_holding_u0000_is_400_and_nothing_is_stored(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: such a write was a 500 there (found by
    tests/test_fuzz.py). Every write body is checked, on both databases alike."""
    user = await create_user(client, "nul@example.se")
    location = f"/Users/{user['id']}"
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("a\x00b")}
        ],
    }
    for method, path, body in (
        ("POST", "/Users", user_body("a\x00b@example.se")),
        ("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G", "x\x00": 1}),
        ("PUT", location, user_body("nul@example.se", displayName="\x00")),
        ("PATCH", location, patch_body({"op": "add", "path": "title", "value": ["a\x00"]})),
        ("POST", "/Bulk", bulk),
    ):
        response = await client.request(method, path, json=body)
        assert_error(response, 400, "invalidValue")
        assert "U+0000" in response.json()["detail"]
    assert await count_resources(engine) == 1
    assert (await client.get(location)).json()["meta"]["version"] == user["meta"]["version"]
    # An escaped backslash before "u0000" is text like any other.
    patched = await client.patch(
        location, json=patch_body({"op": "add", "path": "title", "value": "\\u0000"})
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "\\u0000"


async def test_group_with_unknown_member_is_refused_whole(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await create_user(client, "member@example.se")
    response = await client.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Bad",
            "members": [{"value": user["id"]}, {"value": str(uuid.uuid4())}],
        },
    )
    assert_error(response, 400, "invalidValue")
    assert await count_resources(engine) == 1


# -- read -----------------------------------------------------------------------


async def test_unknown_id_and_unknown_endpoint_are_scim_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"/Users/{uuid.uuid4()}"), 404)
    assert_error(await client.get("/Nothing"), 404)
    assert_error(await client.get("/Users/a/b"), 404)


async def test_a_group_id_is_not_found_as_a_user(client: httpx.AsyncClient) -> None:
    group = await create_group(client, "G")
    assert_error(await client.get(f"/Users/{group['id']}"), 404)


async def test_if_none_match_gives_304_until_the_resource_changes(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client, "etag@example.se")
    url = f"/Users/{user['id']}"
    unchanged = await client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    await client.patch(url, json=patch_body({"op": "replace", "path": "nickName", "value": "E"}))
    changed = await client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == 'W/"2"'


async def test_user_groups_are_derived_from_membership(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "in-groups@example.se")
    first = await create_group(client, "Första", [user["id"]])
    second = await create_group(client, "Andra", [user["id"]])
    groups = (await client.get(f"/Users/{user['id']}")).json()["groups"]
    assert {(g["value"], g["display"], g["type"]) for g in groups} == {
        (first["id"], "Första", "direct"),
        (second["id"], "Andra", "direct"),
    }
    assert all(g["$ref"].endswith(f"/Groups/{g['value']}") for g in groups)
    await client.delete(f"/Groups/{first['id']}")
    groups = (await client.get(f"/Users/{user['id']}")).json()["groups"]
    assert [g["value"] for g in groups] == [second["id"]]


async def test_group_members_show_type_ref_and_display(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "m@example.se", displayName="Maja Ek")
    inner = await create_group(client, "Inre")
    group = await create_group(client, "Yttre", [user["id"], inner["id"]])
    by_id = {m["value"]: m for m in group["members"]}
    assert by_id[user["id"]]["type"] == "User"
    assert by_id[user["id"]]["display"] == "Maja Ek"
    assert by_id[user["id"]]["$ref"].endswith(f"/Users/{user['id']}")
    assert by_id[inner["id"]]["type"] == "Group"
    assert by_id[inner["id"]]["display"] == "Inre"


# -- replace ------------------------------------------------------------------------


async def test_put_replaces_everything_but_read_only_attributes(client: httpx.AsyncClient) -> None:
    user = await create_user(
        client,
        "put@example.se",
        nickName="Nicke",
        title="Handläggare",
        name={"givenName": "Per", "familyName": "Ek"},
    )
    response = await client.put(
        f"/Users/{user['id']}",
        json=user_body(
            "put@example.se", title="Chef", id="ignored", meta={"created": "2001-01-01T00:00:00Z"}
        ),
    )
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["id"] == user["id"]
    assert replaced["title"] == "Chef"
    assert "nickName" not in replaced and "name" not in replaced
    assert replaced["meta"]["created"] == user["meta"]["created"]
    assert replaced["meta"]["version"] == response.headers["etag"] == 'W/"2"'
    assert replaced["meta"]["lastModified"] >= user["meta"]["lastModified"]


async def test_put_to_a_taken_user_name_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_user(client, "taken@example.se")
    other = await create_user(client, "other@example.se")
    response = await client.put(f"/Users/{other['id']}", json=user_body("TAKEN@example.se"))
    assert_error(response, 409, "uniqueness")
    after = (await client.get(f"/Users/{other['id']}")).json()
    assert after["userName"] == "other@example.se"
    assert after["meta"]["version"] == 'W/"1"'


async def test_put_of_a_group_replaces_its_members(client: httpx.AsyncClient) -> None:
    a = await create_user(client, "a@example.se")
    b = await create_user(client, "b@example.se")
    group = await create_group(client, "G", [a["id"]])
    response = await client.put(
        f"/Groups/{group['id']}",
        json={"schemas": [GROUP_SCHEMA], "displayName": "G2", "members": [{"value": b["id"]}]},
    )
    assert response.status_code == 200
    assert [m["value"] for m in response.json()["members"]] == [b["id"]]
    assert "groups" not in (await client.get(f"/Users/{a['id']}")).json()


async def test_put_of_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.put(f"/Users/{uuid.uuid4()}", json=user_body("x")), 404)


# -- versioning -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, method: str
) -> None:
    user = await create_user(client, "v@example.se")
    url = f"/Users/{user['id']}"
    await client.patch(url, json=patch_body({"op": "add", "path": "title", "value": "T"}))
    bodies = {
        "PUT": user_body("v@example.se", title="Stale"),
        "PATCH": patch_body({"op": "replace", "path": "title", "value": "Stale"}),
        "DELETE": None,
    }
    response = await client.request(method, url, json=bodies[method], headers={"If-Match": 'W/"1"'})
    assert_error(response, 412)
    current = (await client.get(url)).json()
    assert current["title"] == "T"
    assert current["meta"]["version"] == 'W/"2"'


@pytest.mark.parametrize("tag", ['W/"1"', '"1"', "*", 'W/"7", W/"1"'])
async def test_matching_if_match_is_accepted(client: httpx.AsyncClient, tag: str) -> None:
    user = await create_user(client, "ok@example.se")
    response = await client.patch(
        f"/Users/{user['id']}",
        json=patch_body({"op": "add", "path": "title", "value": "T"}),
        headers={"If-Match": tag},
    )
    assert response.status_code == 200


async def test_concurrent_patches_lose_no_update(client: httpx.AsyncClient) -> None:
    """Ten writers each add a different phone number at once: all ten numbers stay."""
    user = await create_user(client, "busy@example.se")
    url = f"/Users/{user['id']}"
    responses = await asyncio.gather(
        *(
            client.patch(
                url,
                json=patch_body(
                    {
                        "op": "add",
                        "path": "phoneNumbers",
                        "value": [{"value": f"+46 70 000 00 {i:02}"}],
                    }
                ),
            )
            for i in range(10)
        )
    )
    assert all(response.status_code == 200 for response in responses)
    final = (await client.get(url)).json()
    assert len(final["phoneNumbers"]) == 10
    assert final["meta"]["version"] == 'W/"11"'


async def test_concurrent_writers_with_one_etag_have_one_winner(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "etag-race@example.se")
    url = f"/Users/{user['id']}"
    responses = await asyncio.gather(
        *(
            client.patch(
                url,
                json=patch_body({"op": "replace", "path": "title", "value": f"T{i}"}),
                headers={"If-Match": 'W/"1"'},
            )
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412]
    winner = next(r for r in responses if r.status_code == 200).json()["title"]
    assert (await client.get(url)).json()["title"] == winner


# -- delete -----------------------------------------------------------------------------


async def test_delete_removes_the_user_and_its_memberships(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await create_user(client, "gone@example.se")
    group = await create_group(client, "G", [user["id"]])
    response = await client.delete(f"/Users/{user['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.delete(f"/Users/{user['id']}"), 404)
    assert "members" not in (await client.get(f"/Groups/{group['id']}")).json()
    async with engine.connect() as connection:
        assert (await connection.execute(select(members))).all() == []


async def test_me_is_404_for_an_identity_system(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/Me"), 404)


# -- tenant scoping ----------------------------------------------------------------------


@pytest.fixture
async def other_tenant_user(engine: AsyncEngine, clean: None, organisations: Organisations) -> str:
    """A user stored for Göteborg; ``client`` acts for Stockholm."""
    async with engine.begin() as connection:
        now = datetime.now(UTC)
        document = {
            "schemas": [USER_SCHEMA],
            "userName": "hidden@example.se",
            "name": {"familyName": "Dold"},
        }
        resource_id = str(uuid.uuid4())
        await connection.execute(
            insert(resources).values(
                tenant_id=organisations.goteborg.id,
                id=resource_id,
                resource_type="User",
                created=now,
                last_modified=now,
                version=1,
                data=document,
                **search_keys(document),
            )
        )
    return resource_id


async def test_another_tenants_user_is_invisible_and_untouchable(
    client: httpx.AsyncClient, other_tenant_user: str
) -> None:
    assert_error(await client.get(f"/Users/{other_tenant_user}"), 404)
    assert (await client.get("/Users")).json()["totalResults"] == 0
    found = await client.get("/Users", params={"filter": 'name.familyName eq "Dold"'})
    assert found.json()["totalResults"] == 0
    searched = await client.post("/.search", json={"filter": f'id eq "{other_tenant_user}"'})
    assert searched.json()["totalResults"] == 0
    body = patch_body({"op": "replace", "path": "title", "value": "x"})
    assert_error(await client.patch(f"/Users/{other_tenant_user}", json=body), 404)
    assert_error(await client.put(f"/Users/{other_tenant_user}", json=user_body("h")), 404)
    assert_error(await client.delete(f"/Users/{other_tenant_user}"), 404)
    group = await client.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "G",
            "members": [{"value": other_tenant_user}],
        },
    )
    assert_error(group, 400, "invalidValue")


async def test_user_name_is_unique_per_tenant_only(
    client: httpx.AsyncClient, other_tenant_user: str
) -> None:
    await create_user(client, "hidden@example.se")


async def test_query_at_the_root_spans_users_and_groups(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "root@example.se", displayName="Rut Ek")
    group = await create_group(client, "Rutiner")
    found = (await client.get("/", params={"filter": 'displayName sw "Ru"'})).json()
    assert {r["id"] for r in found["Resources"]} == {user["id"], group["id"]}
    assert {r["meta"]["resourceType"] for r in found["Resources"]} == {"User", "Group"}


async def test_unsupported_method_is_a_scim_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/Users"), 405)
