"""Per-organisation counts (``scim.storage.counts``): an unfiltered list's totalResults is read
from what the database keeps with each insert and delete, and it is exact whatever writes
them: single requests, Bulk, concurrent writers, a DELETE in SQL, another organisation's."""

from __future__ import annotations

import asyncio

import httpx
from litestar import Litestar
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage import counts
from scim.storage.database import create_engine, downgrade, upgrade
from scim.storage.tables import resource_count_changes, resources
from tests.conftest import (
    GROUP_SCHEMA,
    Organisations,
    api_client,
    captured,
    fresh_database,
)
from tests.engine.conftest import create_user, user_body

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def total(client: httpx.AsyncClient, path: str) -> int:
    response = await client.get(path, params={"count": "1"})
    assert response.status_code == 200, response.text
    value: int = response.json()["totalResults"]
    return value


async def truth(engine: AsyncEngine, tenant_id: int, kinds: tuple[str, ...]) -> int:
    async with engine.connect() as connection:
        statement = (
            select(func.count())
            .select_from(resources)
            .where(resources.c.tenant_id == tenant_id, resources.c.resource_type.in_(kinds))
        )
        return int((await connection.execute(statement)).scalar_one())


async def assert_exact(
    client: httpx.AsyncClient, engine: AsyncEngine, tenant_id: int
) -> tuple[int, int]:
    users, groups = (
        await truth(engine, tenant_id, ("User",)),
        await truth(engine, tenant_id, ("Group",)),
    )
    assert await total(client, "/Users") == users
    assert await total(client, "/Groups") == groups
    assert await total(client, "/") == users + groups  # the root query spans both
    return users, groups


async def test_an_unfiltered_total_is_read_not_counted(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    for name in ("a", "b", "c"):
        await create_user(client, f"{name}@example.se")
    with captured(app.state.engine) as seen:
        assert await total(client, "/Users") == 3
    assert any("resource_counts" in statement for statement in seen), seen
    assert not any("count(*)" in statement for statement in seen), seen
    # A filtered list counts its matches.
    listed = await client.get("/Users", params={"filter": 'userName sw "a"', "count": "0"})
    assert listed.json()["totalResults"] == 1


async def test_every_kind_of_write_keeps_the_count_exact(
    app: Litestar,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    organisations: Organisations,
) -> None:
    stockholm, goteborg = organisations.stockholm, organisations.goteborg
    created = [await create_user(client, f"u{n}@example.se") for n in range(4)]
    assert await assert_exact(client, engine, stockholm.id) == (4, 0)
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": f"b{n}", "data": user_body(f"b{n}@x.se")}
        for n in range(30)
    ] + [
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": []},
        },
        {"method": "DELETE", "path": f"/Users/{created[0]['id']}"},
    ]
    bulk = await client.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    assert bulk.status_code == 200, bulk.text
    assert await assert_exact(client, engine, stockholm.id) == (33, 1)
    # Another organisation's writes are its own.
    async with api_client(app, goteborg.token) as other:
        await create_user(other, "annan@goteborg.se")
        assert await assert_exact(other, engine, goteborg.id) == (1, 0)
    assert await assert_exact(client, engine, stockholm.id) == (33, 1)
    # A refused write changes nothing.
    assert (await client.post("/Users", json=user_body("u1@example.se"))).status_code == 409
    # Deleted in SQL, past the application: the database keeps the count all the same.
    async with engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM resources WHERE tenant_id = :t AND id = :id"),
            {"t": stockholm.id, "id": created[1]["id"]},
        )
    assert await assert_exact(client, engine, stockholm.id) == (32, 1)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            await counts.fold(connection)
        async with engine.connect() as connection:
            pending = select(func.count()).select_from(resource_count_changes)
            assert (await connection.execute(pending)).scalar_one() == 0
        assert await assert_exact(client, engine, stockholm.id) == (32, 1)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM members"))
        await connection.execute(text("DELETE FROM resources"))
    assert await assert_exact(client, engine, stockholm.id) == (0, 0)
    async with api_client(app, goteborg.token) as other:
        assert await assert_exact(other, engine, goteborg.id) == (0, 0)


async def test_concurrent_writers_and_folds_keep_it_exact(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    kept = [await create_user(client, f"k{n}@example.se") for n in range(10)]

    async def fold_now() -> None:
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await counts.fold(connection)

    results = await asyncio.gather(
        *(client.post("/Users", json=user_body(f"c{n}@example.se")) for n in range(20)),
        *(client.delete(f"/Users/{user['id']}") for user in kept[:8]),
        *(fold_now() for _ in range(3)),
    )
    statuses = sorted(r.status_code for r in results if r is not None)
    assert statuses == [201] * 20 + [204] * 8
    await fold_now()
    assert await assert_exact(client, engine, organisations.stockholm.id) == (22, 0)


def test_the_migration_counts_what_is_there() -> None:
    with fresh_database() as url:
        asyncio.run(_migrated_with_rows(url))


async def _migrated_with_rows(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO tenants (id, org_number, name, kind, created) "
                    "VALUES (7, '2120000142', 'S', 'kommun', CURRENT_TIMESTAMP)"
                )
            )
            for n, kind in enumerate(["User"] * 5 + ["Group"] * 2):
                await connection.execute(
                    text(
                        "INSERT INTO resources (tenant_id, id, resource_type, created, "
                        "last_modified, version, data) VALUES (7, :id, :kind, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, '{}')"
                    ),
                    {"id": f"r{n}", "kind": kind},
                )
        await downgrade(engine, "0011")
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM resources WHERE id = 'r0'"))
        await upgrade(engine)
        async with engine.connect() as connection:
            for kinds, expected in ((("User",), 4), (("Group",), 2), (("User", "Group"), 6)):
                counted = await connection.execute(counts.statement(kinds), {"tenant_id": 7})
                assert counted.scalar_one() == expected
    finally:
        await engine.dispose()
