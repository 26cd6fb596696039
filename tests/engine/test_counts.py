"""Per-organisation counts (``scim.storage.counts``): an unfiltered list's totalResults is read
from what the database keeps with each insert and delete, and it is exact whatever writes
them: single requests, Bulk, concurrent writers, a DELETE in SQL, another organisation's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage import counts, direct
from scim.storage.database import create_engine, downgrade, upgrade
from scim.storage.tables import resource_count_changes, resources
from tests.conftest import (
    GROUP_SCHEMA,
    Organisations,
    api_client,
    captured,
    create_group,
    fresh_database,
    patch_body,
    sent_by,
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
    # Read by the page's own statement, beside its rows: one statement for both.
    (page,) = [statement for statement in seen if "FROM resources" in statement]
    assert "resource_counts" in page, page
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


# -- filtered counts, made again only after a write ---------------------------------------

STARTS_WITH_F = {"filter": 'userName sw "f"', "count": "1"}


@contextlib.contextmanager
def checked_rows(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The rows of every ``counts.checked`` statement read: (generation, count), count None
    where the generation was known and nothing was counted. None is read where the page
    read the generation a count was made at (``counts.known``)."""
    seen: list[Any] = []
    first = direct.first

    async def spy(source: Any, statement: Any, parameters: Any) -> Any:
        row = await first(source, statement, parameters)
        if "known" in parameters:
            seen.append(row)
        return row

    with monkeypatch.context() as patched:
        patched.setattr(direct, "first", spy)
        yield seen


async def filtered_truth(engine: AsyncEngine, tenant_id: int) -> int:
    async with engine.connect() as connection:
        statement = (
            select(func.count())
            .select_from(resources)
            .where(
                resources.c.tenant_id == tenant_id,
                resources.c.resource_type == "User",
                resources.c.user_name_key.startswith("f"),
            )
        )
        return int((await connection.execute(statement)).scalar_one())


async def filtered_total(client: httpx.AsyncClient, params: dict[str, str]) -> int:
    response = await client.get("/Users", params=params)
    assert response.status_code == 200, response.text
    value: int = response.json()["totalResults"]
    return value


async def test_a_filtered_count_is_made_again_only_after_a_write_of_the_organisation(
    app: Litestar,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    organisations: Organisations,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stockholm = organisations.stockholm.id
    users = [await create_user(client, f"f{n}@example.se") for n in range(3)]
    other = await create_user(client, "other@example.se")
    group = await create_group(client, "G", [users[0]["id"]])
    in_group = {"filter": f'groups.value eq "{group["id"]}" or userName sw "f"', "count": "1"}

    async def exact_and(counted: bool, params: dict[str, str] = STARTS_WITH_F) -> None:
        with checked_rows(monkeypatch) as rows:
            total = await filtered_total(client, params)
        # Counted: one statement counts. Not: the page's own statement told the total.
        assert [row.count is not None for row in rows] == ([True] if counted else []), rows
        if params is STARTS_WITH_F:
            assert total == await filtered_truth(engine, stockholm)

    await exact_and(counted=True)
    await exact_and(counted=False)  # nothing written since
    await exact_and(counted=False)
    # Every kind of write of the organisation makes it count again, whatever it changed.
    writes: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: client.post("/Users", json=user_body("f9@example.se")),
        lambda: client.patch(
            f"/Users/{users[1]['id']}",
            json=patch_body({"op": "replace", "path": "userName", "value": "g1@example.se"}),
        ),
        lambda: client.patch(
            f"/Users/{other['id']}",
            json=patch_body({"op": "replace", "path": "displayName", "value": "Annan"}),
        ),
        lambda: client.delete(f"/Users/{users[2]['id']}"),
    ]
    for write in writes:
        assert (await write()).status_code in (200, 201, 204)
        await exact_and(counted=True)
        await exact_and(counted=False)
    # A membership changes what ``groups`` matches: it counts again.
    await exact_and(counted=True, params=in_group)
    await exact_and(counted=False, params=in_group)
    added = patch_body({"op": "add", "path": "members", "value": [{"value": other["id"]}]})
    assert (await client.patch(f"/Groups/{group['id']}", json=added)).status_code in (200, 204)
    with checked_rows(monkeypatch) as rows:
        assert await filtered_total(client, in_group) == await filtered_truth(engine, stockholm) + 1
    assert rows[0].count is not None
    # Written in SQL, past the application: the database's triggers still count the write.
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO members (tenant_id, group_id, member_id) VALUES (:t, :g, :m)"),
            {"t": stockholm, "g": group["id"], "m": users[1]["id"]},
        )
    with checked_rows(monkeypatch) as rows:
        assert await filtered_total(client, in_group) == await filtered_truth(engine, stockholm) + 2
    assert rows[0].count is not None
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE resources SET user_name_key = 'fx' WHERE id = :id"), {"id": other["id"]}
        )
    await exact_and(counted=True)
    # Another organisation's writes are not this one's.
    async with api_client(app, organisations.goteborg.token) as goteborg:
        await create_user(goteborg, "f@goteborg.se")
    await exact_and(counted=False)


async def test_a_count_in_a_write_transaction_is_neither_kept_nor_taken(
    engine: AsyncEngine, organisations: Organisations, client: httpx.AsyncClient
) -> None:
    """A write's transaction sees its own writes, in a generation that another write may
    reach once this one is rolled back: a count made there is not kept, or the later one
    would take it."""
    stockholm = organisations.stockholm.id
    created = [await create_user(client, f"f{n}@example.se") for n in range(2)]
    statement = counts.checked(
        select(func.count())
        .select_from(resources)
        .where(
            resources.c.tenant_id == bindparam("tenant_id"),
            resources.c.user_name_key.startswith("f"),
        )
    )
    parameters = {"tenant_id": stockholm}
    assert await counts.counted(engine, statement, "f", parameters) == 2
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(
            text("UPDATE resources SET user_name_key = 'g' WHERE id = :id"),
            {"id": created[0]["id"]},
        )
        assert await counts.counted(connection, statement, "f", parameters) == 1
        await transaction.rollback()
    # Another write, committed: the generation the rolled back one had reached.
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE resources SET version = version + 1 WHERE id = :id"),
            {"id": created[1]["id"]},
        )
    assert await counts.counted(engine, statement, "f", parameters) == 2


async def test_a_value_that_cannot_be_a_key_is_counted_every_time(
    engine: AsyncEngine, organisations: Organisations, client: httpx.AsyncClient
) -> None:
    created = [await create_user(client, f"f{n}@example.se") for n in range(3)]
    statement = counts.checked(
        select(func.count())
        .select_from(resources)
        .where(resources.c.id.in_(bindparam("ids", expanding=True)))
    )
    for wanted in (created[:2], created):
        parameters = {"tenant_id": organisations.stockholm.id, "ids": [u["id"] for u in wanted]}
        assert await counts.counted(engine, statement, "ids", parameters) == len(wanted)


async def test_a_fold_keeps_the_generation_and_a_recount_moves_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL folds and recounts")
    for n in range(3):
        await create_user(client, f"f{n}@example.se")
    assert await filtered_total(client, STARTS_WITH_F) == 3
    async with engine.begin() as connection:
        await counts.fold(connection)
    with checked_rows(monkeypatch) as rows:
        assert await filtered_total(client, STARTS_WITH_F) == 3
    assert rows == []  # the generation the page read is the one counted at
    async with engine.begin() as connection:
        for statement in counts.RECOUNT:
            await connection.execute(text(statement))
    with checked_rows(monkeypatch) as rows:
        assert await filtered_total(client, STARTS_WITH_F) == 3
    assert rows[0].count == 3
    assert await total(client, "/Users") == 3


async def test_filtered_counts_stay_exact_under_concurrent_writers(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    kept = [await create_user(client, f"f{n}@example.se") for n in range(10)]

    async def read() -> int:
        return await filtered_total(client, STARTS_WITH_F)

    results = await asyncio.gather(
        *(client.post("/Users", json=user_body(f"fc{n}@example.se")) for n in range(15)),
        *(client.delete(f"/Users/{user['id']}") for user in kept[:5]),
        *(read() for _ in range(20)),
    )
    # Each read counts a committed state: between all five deletes first (5) and all
    # fifteen creates first (25).
    totals = [total for total in results if isinstance(total, int)]
    assert all(5 <= total <= 25 for total in totals), totals
    assert await read() == await filtered_truth(engine, organisations.stockholm.id) == 20


def test_known_counts_are_bounded_and_the_least_recently_used_go_first() -> None:
    known = counts.Known(size=2)
    known.put("a", 1, 10)
    known.put("b", 1, 20)
    assert known.get("a") == (1, 10)  # a is now the more recent
    known.put("c", 2, 30)
    assert known.get("b") is None
    assert known.get("a") == (1, 10)
    assert known.get("c") == (2, 30)


async def test_a_filtered_count_reads_the_generation_once(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """The generation is made once for both its uses: PostgreSQL inlined it as a plain CTE
    and read the changes not folded yet twice, each as long as the other (two thirds of a
    ``co`` count's 20 ms where many deleted change rows were not vacuumed yet)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no change rows")
    await create_user(client, "generation@example.se", name={"familyName": "Generationsson"})
    filter_ = 'name.familyName co "ationss"'
    with sent_by(app.state.service.read_engine, "WITH GENERATION") as sent:
        response = await client.get("/Users", params={"filter": filter_, "count": "1"})
    assert response.status_code == 200, response.text
    ((statement, parameters),) = sent
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in rows)
    assert plan.count("on resource_count_changes") == 1, plan
