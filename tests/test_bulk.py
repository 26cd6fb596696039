"""Bulk (RFC 7644 §3.7): operations in one request, each its own transaction, with bulkId
references in any order, failOnErrors, versions and limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.settings import Settings
from scim.storage.tables import resources
from tests.conftest import (
    ESERVICES,
    GROUP_SCHEMA,
    Organisations,
    api_client,
    create_user,
    patch_body,
    user_body,
)

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def bulk(*operations: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": list(operations), **options}


def post_user(bulk_id: str, user_name: str, **attributes: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": user_body(user_name, **attributes),
    }


def post_group(bulk_id: str, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": {
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"value": member} for member in members],
        },
    }


async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post("/Bulk", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["schemas"] == [BULK_RESPONSE]
    operations: list[dict[str, Any]] = payload["Operations"]
    return operations


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(resources))).scalar_one()
        )


def resource_id(result: dict[str, Any]) -> str:
    location: str = result["location"]
    return location.rsplit("/", 1)[-1]


async def test_bulk_is_advertised(client: httpx.AsyncClient) -> None:
    config = (await client.get("/ServiceProviderConfig")).json()
    assert config["bulk"] == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": 256 * 1024,
    }


async def test_every_method_reports_its_own_status(client: httpx.AsyncClient) -> None:
    existing = await create_user(client, "existing@example.se")
    results = await send(
        client,
        bulk(
            post_user("new", "new@example.se"),
            {
                "method": "PUT",
                "path": f"/Users/{existing['id']}",
                "data": user_body(
                    "existing@example.se",
                    title="T",
                    **{ESERVICES: existing[ESERVICES]},
                ),
            },
            {
                "method": "PATCH",
                "path": f"/Users/{existing['id']}",
                "data": patch_body({"op": "replace", "path": "nickName", "value": "N"}),
            },
            {"method": "DELETE", "path": "/Users/bulkId:new"},
        ),
    )
    assert [(r["method"], r["status"]) for r in results] == [
        ("POST", "201"),
        ("PUT", "200"),
        ("PATCH", "200"),
        ("DELETE", "204"),
    ]
    assert results[0]["bulkId"] == "new" and results[0]["version"] == 'W/"1"'
    assert results[0]["location"].startswith("http://scim.test/scim/v2/Users/")
    assert results[2]["version"] == 'W/"3"'
    user = (await client.get(f"/Users/{existing['id']}")).json()
    assert (user["title"], user["nickName"]) == ("T", "N")
    assert (await client.get(results[0]["location"])).status_code == 404


async def test_references_forward_and_backward(client: httpx.AsyncClient) -> None:
    """The group names users created before it (backward) and after it (forward)."""
    results = await send(
        client,
        bulk(
            post_user("anna", "anna@example.se"),
            post_group("team", "Team", ["bulkId:anna", "bulkId:erik"]),
            post_user("erik", "erik@example.se"),
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:team",
                "data": patch_body(
                    {"op": "add", "path": "members", "value": [{"value": "bulkId:sofia"}]}
                ),
            },
            post_user("sofia", "sofia@example.se"),
        ),
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "204", "201"]
    by_bulk_id = {r.get("bulkId"): resource_id(r) for r in results if "bulkId" in r}
    group = (await client.get(f"/Groups/{by_bulk_id['team']}")).json()
    assert {m["value"] for m in group["members"]} == {
        by_bulk_id["anna"],
        by_bulk_id["erik"],
        by_bulk_id["sofia"],
    }
    erik = (await client.get(f"/Users/{by_bulk_id['erik']}")).json()
    assert erik["groups"][0]["value"] == by_bulk_id["team"]


async def test_unresolvable_and_circular_references_fail_on_their_own(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    results = await send(
        client,
        bulk(
            post_group("lonely", "Lonely", ["bulkId:nobody"]),
            post_group("a", "A", ["bulkId:b"]),
            post_group("b", "B", ["bulkId:a"]),
            post_user("ok", "ok@example.se"),
            post_group("bad-member", "Bad", ["bulkId:broken"]),
            post_user("broken", ""),
        ),
    )
    statuses = {r["bulkId"]: r for r in results}
    for failed in ("lonely", "a", "b"):
        assert statuses[failed]["status"] == "400"
        assert statuses[failed]["response"]["scimType"] == "invalidValue"
        assert ERROR in statuses[failed]["response"]["schemas"]
    assert "nobody" in statuses["lonely"]["response"]["detail"]
    assert "Circular" in statuses["a"]["response"]["detail"]
    assert statuses["ok"]["status"] == "201"
    assert statuses["broken"]["status"] == "400"
    assert statuses["bad-member"]["status"] == "400"
    assert "failed" in statuses["bad-member"]["response"]["detail"]
    assert await stored(engine) == 1


async def test_fail_on_errors_stops_and_keeps_what_was_done(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    results = await send(
        client,
        bulk(
            post_user("1", "one@example.se"),
            post_user("2", "one@example.se"),  # taken
            post_user("3", "three@example.se"),
            post_user("4", "three@example.se"),  # taken
            post_user("5", "five@example.se"),
            failOnErrors=2,
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("1", "201"),
        ("2", "409"),
        ("3", "201"),
        ("4", "409"),
    ]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert await stored(engine) == 2


async def test_version_acts_as_if_match(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "v@example.se")
    stale = {
        "method": "PATCH",
        "path": f"/Users/{user['id']}",
        "version": 'W/"9"',
        "data": patch_body({"op": "add", "path": "title", "value": "stale"}),
    }
    current = {
        **stale,
        "version": 'W/"1"',
        "data": patch_body({"op": "add", "path": "title", "value": "fresh"}),
    }
    results = await send(client, bulk(stale, current))
    assert [r["status"] for r in results] == ["412", "200"]
    assert (await client.get(f"/Users/{user['id']}")).json()["title"] == "fresh"


@pytest.mark.parametrize(
    ("operation", "fragment"),
    [
        ({"method": "GET", "path": "/Users"}, "method"),
        ({"method": "POST", "path": "/Users", "data": {"userName": "x"}}, "bulkId"),
        ({"method": "POST", "path": "/Nothing", "bulkId": "n", "data": {}}, "path"),
        ({"method": "PUT", "path": "/Users", "data": {"userName": "x"}}, "one resource"),
        ({"method": "PATCH", "path": "Users/x", "data": {}}, "path"),
        ({"method": "DELETE", "path": "/Users/a/b"}, "path"),
        ({"method": "PUT", "path": "/Users/x"}, "data"),
        ("not an object", "object"),
    ],
)
async def test_a_malformed_operation_fails_alone(
    client: httpx.AsyncClient, engine: AsyncEngine, operation: Any, fragment: str
) -> None:
    results = await send(client, bulk(operation, post_user("fine", "fine@example.se")))
    assert results[0]["status"] == "400"
    assert fragment in results[0]["response"]["detail"]
    assert results[1]["status"] == "201"
    assert await stored(engine) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (bulk(post_user("same", "a@example.se"), post_user("same", "b@example.se")), "same"),
        (
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [post_user("a", "a@example.se")],
            },
            "BulkRequest",
        ),
        (bulk(), "Operations"),
        (bulk(post_user("a", "a@example.se"), failOnErrors=0), "failOnErrors"),
    ],
)
async def test_a_malformed_request_is_refused_whole(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/Bulk", json=body)
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    assert fragment in response.json()["detail"]
    assert await stored(engine) == 0


@pytest.fixture
async def small_app(
    settings: Settings, engine: AsyncEngine, clean: None
) -> AsyncIterator[Litestar]:
    app = create_app(
        Settings(database_url=settings.database_url, max_bulk_operations=3, max_payload_size=4096)
    )
    yield app
    await app.state.engine.dispose()


async def test_limits_are_enforced_before_anything_runs(
    small_app: Litestar, organisations: Organisations, engine: AsyncEngine
) -> None:
    async with api_client(small_app, organisations.stockholm.token) as client:
        too_many = bulk(*(post_user(str(i), f"u{i}@example.se") for i in range(4)))
        response = await client.post("/Bulk", json=too_many)
        assert response.status_code == 413
        assert response.json()["scimType"] == "tooMany"
        assert "maxOperations is 3" in response.json()["detail"]
        too_large = bulk(post_user("big", "big@example.se", nickName="x" * 5000))
        response = await client.post("/Bulk", json=too_large)
        assert response.status_code == 413
        assert "4096" in response.json()["detail"]
    assert await stored(engine) == 0


async def test_another_organisations_resources_are_out_of_reach(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations, engine: AsyncEngine
) -> None:
    async with api_client(app, organisations.goteborg.token) as goteborg:
        foreign = await create_user(goteborg, "foreign@goteborg.se")
        foreign_results = await send(goteborg, bulk(post_user("mine", "mine@goteborg.se")))
    foreign_id = resource_id(foreign_results[0])
    results = await send(
        client,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{foreign['id']}",
                "data": patch_body({"op": "add", "path": "title", "value": "x"}),
            },
            {"method": "DELETE", "path": f"/Users/{foreign_id}"},
            post_group("g", "G", [foreign["id"]]),
            # Göteborg's bulkId "mine" means nothing in Stockholm's request.
            post_group("h", "H", ["bulkId:mine"]),
        ),
    )
    assert [r["status"] for r in results] == ["404", "404", "400", "400"]
    # Errors may echo the ids the caller sent, but nothing of what Göteborg stores.
    assert "goteborg" not in str(results)
    assert all("location" not in r and "version" not in r for r in results)
    async with api_client(app, organisations.goteborg.token) as goteborg:
        assert (await goteborg.get(f"/Users/{foreign['id']}")).json().get("title") is None
        assert (await goteborg.get(f"/Users/{foreign_id}")).status_code == 200
    assert await stored(engine) == 2


async def test_bulk_needs_credentials(app: Litestar, clean: None) -> None:
    async with api_client(app, None) as anonymous:
        response = await anonymous.post("/Bulk", json=bulk(post_user("a", "a@example.se")))
    assert response.status_code == 401
