"""``co``, ``sw`` and ``ew`` on a name: SQLite reads a rare fragment's matches from the names'
trigrams (migration 0021, ``scim.storage.trigrams``) and walks the organisation for a frequent
one; either way the answer is what the filter says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.hooks import Domain
from scim.protocol.folding import fold
from scim.settings import Settings
from scim.storage import statistics, trigrams
from scim.storage.database import create_engine, downgrade, upgrade
from tests.conftest import api_client, captured, fresh_database, patch_body, sent_by
from tests.engine.conftest import create_user, user_body
from tests.live import migrated_with_stockholm

# Names a pattern must find exactly: quotes, wildcards of LIKE and the index's query
# language, a backslash, spaces, Swedish letters in both cases, and a look-alike.
PEOPLE = [
    ("Åsa", "Åström"),
    ("Örjan", 'O"Neil'),
    ("Per_Olof", "50% Andersson"),
    ("Lars", "Back\\slash"),
    ("Eva", "Lund Berg"),
    ("Anna", "Lindqvist"),
    ("Ånna", "Sjöberg"),
    ("Anders", "Andersson"),
    ("Karl", "Carlsson"),
    ("Jörgen", "Ekström"),
    ("Ida", "Lindström"),
    ("Mia", "ᴀndersson"),  # a small capital A: not an "a"
]
FRAGMENTS = [
    "a",
    "An",
    "ström",
    "STRÖM",
    "Ås",
    'o"n',
    "50%",
    "% A",
    "_",
    "per_o",
    "k\\s",
    "d b",
    "lindqvist",
    "sson",
    "ersson",
    "zzz",
    "öber",
    "ᴀnd",
    "nd",
]
ATTRIBUTES = {
    "name.familyName": lambda body: body["name"]["familyName"],
    "name.givenName": lambda body: body["name"]["givenName"],
    "userName": lambda body: body["userName"],
    "displayName": lambda body: body["displayName"],
}
TESTS = {
    "co": lambda value, part: part in value,
    "sw": lambda value, part: value.startswith(part),
    "ew": lambda value, part: value.endswith(part),
}


def person(index: int, given: str, family: str) -> dict[str, Any]:
    return user_body(
        f"{given}.{family}.{index}@example.se",
        name={"givenName": given, "familyName": family},
        displayName=f"{given} {family}",
    )


async def found(client: httpx.AsyncClient, filter_: str, **params: Any) -> list[str]:
    response = await client.get("/Users", params={"filter": filter_, "count": 200, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    ids = sorted(resource["id"] for resource in body.get("Resources", []))
    assert body["totalResults"] == len(ids), body
    # A page that does not hold them all is counted by a statement of its own.
    response = await client.get("/Users", params={"filter": filter_, "count": 1, "startIndex": 2})
    assert response.status_code == 200, response.text
    assert response.json()["totalResults"] == len(ids), filter_
    return ids


async def in_the_index(engine: AsyncEngine, column: str, fragment: str) -> int:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM resource_names WHERE resource_names MATCH :query"),
            {"query": f'{column} : "{fragment}"'},
        )
        return int(found.scalar_one())


async def check_the_index(engine: AsyncEngine) -> None:
    """FTS5's own check of an external content index against the table it indexes: raises
    if a row's names are not indexed as they are now."""
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO resource_names (resource_names, rank) VALUES ('integrity-check', 1)")
        )


def sqlite_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the names' trigram index is SQLite's")


async def test_patterns_find_what_they_say(client: httpx.AsyncClient) -> None:
    """Every operator on every name finds exactly the users whose folded name holds the
    folded fragment there (RFC 7644 §3.4.2.2; names compare case-insensitively), whichever
    way the database finds them."""
    created = {}
    for index, (given, family) in enumerate(PEOPLE):
        body = person(index, given, family)
        response = await client.post("/Users", json=body)
        assert response.status_code == 201, response.text
        created[response.json()["id"]] = body
    for fragment in FRAGMENTS:
        for operator, holds in TESTS.items():
            for attribute, value in ATTRIBUTES.items():
                expected = sorted(
                    resource_id
                    for resource_id, body in created.items()
                    if holds(fold(value(body)), fold(fragment))
                )
                literal = json.dumps(fragment, ensure_ascii=False)
                filter_ = f"{attribute} {operator} {literal}"
                assert await found(client, filter_) == expected, filter_


async def test_a_rare_fragment_is_read_from_the_trigrams_a_frequent_one_walked(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With fewer names holding it than ``RARE``, a fragment's page and count take the rows
    the index gives; with more, the organisation is walked, as without the index."""
    engine = app.state.service.read_engine
    sqlite_only(engine)
    monkeypatch.setattr(trigrams, "RARE", 3)
    for index, family in enumerate(["Lindqvist", "Lindberg", "Lindgren", "Lindahl", "Ek"]):
        await create_user(
            client, f"u{index}@example.se", name={"givenName": "A", "familyName": family}
        )
    with captured(engine) as statements:
        rare = await found(client, 'name.familyName co "dqvi"')
    pages = [s for s in statements if "FROM resources" in s and "resource_names" in s]
    assert len(rare) == 1 and pages, statements
    assert all("resource_names MATCH" in s for s in pages)
    with captured(engine) as statements:
        frequent = await found(client, 'name.familyName co "lind"')
    assert len(frequent) == 4
    reading = [s for s in statements if "FROM resources" in s]
    assert reading and not any("resource_names" in s for s in reading), statements
    with captured(engine) as statements:
        short = await found(client, 'name.familyName co "ek"')
    assert len(short) == 1
    assert not any("resource_names" in s for s in statements)  # no trigram in "ek"


async def test_a_shape_reads_each_pattern_its_own_way(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches of one shape (compiled once, ``ResourceService._compile``) each read their
    rare patterns from the trigrams and walk for the others, wherever in the filter they
    stand: a statement kept for one request's choice is not another's."""
    engine = app.state.service.read_engine
    sqlite_only(engine)
    monkeypatch.setattr(trigrams, "RARE", 3)
    families = ["Lindqvist", "Lindberg", "Lindgren", "Lindahl", "Ek"]
    ids = {}
    for index, family in enumerate(families):
        user = await create_user(
            client, f"u{index}@example.se", name={"givenName": "A", "familyName": family}
        )
        ids[family] = user["id"]
    searches = [
        (
            'co "dqvi" or name.familyName co "lind"',
            ["Lindqvist", "Lindberg", "Lindgren", "Lindahl"],
            1,
        ),
        (
            'co "lind" or name.familyName co "dqvi"',
            ["Lindqvist", "Lindberg", "Lindgren", "Lindahl"],
            1,
        ),
        ('co "dber" or name.familyName co "ahl"', ["Lindberg", "Lindahl"], 2),
        (
            'co "lin" or name.familyName co "ek"',
            ["Lindqvist", "Lindberg", "Lindgren", "Lindahl", "Ek"],
            0,
        ),
        ('co "lind" and name.familyName co "gren"', ["Lindgren"], 1),
        ('co "gren" and name.familyName co "lind"', ["Lindgren"], 1),
    ]
    for _ in range(2):
        for condition, expected, rare in searches:
            with captured(engine) as statements:
                got = await found(client, f"name.familyName {condition}")
            assert got == sorted(ids[family] for family in expected), condition
            pages = [s for s in statements if s.startswith("SELECT resources.id")]
            assert pages and all(s.count("MATCH") == rare for s in pages), (condition, pages)


async def test_writes_keep_the_trigrams(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    """Creating, changing (PATCH, PUT), and deleting a user keeps its names in the index
    exactly (FTS5's integrity check against ``resources``), and searches follow."""
    sqlite_only(engine)
    user = await create_user(
        client, "zed@example.se", name={"givenName": "Zed", "familyName": "Xylofonsson"}
    )
    assert await in_the_index(engine, "family_name_key", "ylofo") == 1
    assert await found(client, 'name.familyName co "ylofo"') == [user["id"]]
    patched = await client.patch(
        f"/Users/{user['id']}",
        json=patch_body({"op": "replace", "path": "name.familyName", "value": "Qwertysson"}),
    )
    assert patched.status_code == 200, patched.text
    assert await found(client, 'name.familyName co "ylofo"') == []
    assert await found(client, 'name.familyName co "werty"') == [user["id"]]
    # A change that leaves the names as they were keeps the index as it is.
    unchanged = await client.patch(
        f"/Users/{user['id']}", json=patch_body({"op": "replace", "path": "title", "value": "x"})
    )
    assert unchanged.status_code == 200, unchanged.text
    replaced = await client.put(
        f"/Users/{user['id']}",
        json=user_body("zed@example.se", name={"givenName": "Zed", "familyName": "Plommon"}),
    )
    assert replaced.status_code == 200, replaced.text
    assert await found(client, 'name.familyName co "werty"') == []
    assert await found(client, 'name.familyName co "lommo"') == [user["id"]]
    await check_the_index(engine)
    assert (await client.delete(f"/Users/{user['id']}")).status_code == 204
    assert await in_the_index(engine, "family_name_key", "lommo") == 0
    await check_the_index(engine)


async def test_vacuum_keeps_the_trigrams(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    """The index names rows by rowid: VACUUM, which rewrites the file, keeps them."""
    sqlite_only(engine)
    users = [
        await create_user(
            client, f"v{i}@example.se", name={"givenName": "V", "familyName": f"Vak{i}uum"}
        )
        for i in range(6)
    ]
    for user in users[::2]:
        assert (await client.delete(f"/Users/{user['id']}")).status_code == 204
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("VACUUM")
    await check_the_index(engine)
    for user in users[1::2]:
        number = user["name"]["familyName"][3]
        assert await found(client, f'name.familyName co "k{number}uu"') == [user["id"]]


async def test_without_the_index_patterns_are_walked_and_the_migration_indexes_what_is_there(
    engine: AsyncEngine,
) -> None:
    """Without the index (migration 0021 undone, as on a SQLite without FTS5's trigrams) a
    pattern is found by walking, the same; the migration indexes the users already there."""
    sqlite_only(engine)
    with fresh_database() as url:
        token = await migrated_with_stockholm(url)
        own = create_engine(url)
        try:
            async with served(url, token) as client:
                user = await create_user(
                    client, "m@example.se", name={"givenName": "M", "familyName": "Migrerad"}
                )
            await downgrade(own, "0020")
            async with served(url, token) as client:
                with captured(client.read_engine) as statements:
                    assert await found(client, 'name.familyName co "grer"') == [user["id"]]
                assert not any("resource_names MATCH" in s for s in statements[1:])
            await upgrade(own)
            await check_the_index(own)
            assert await in_the_index(own, "family_name_key", "grer") == 1
            async with served(url, token) as client:
                assert await found(client, 'name.familyName co "grer"') == [user["id"]]
        finally:
            await own.dispose()


@asynccontextmanager
async def served(url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app on ``url`` (its ``read_engine`` the app's engine of reads)."""
    app: Litestar = create_app(Settings(database_url=url), Domain())
    try:
        async with api_client(app, token) as client:
            client.read_engine = app.state.service.read_engine  # type: ignore[attr-defined]
            yield client
    finally:
        await app.state.engine.dispose()


async def test_with_statistics_a_rare_fragments_page_is_read_by_its_rowids(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """SQLite's planner, told by ``ANALYZE`` how many users the organisation has
    (``scim.storage.statistics``, which the server runs), reads a rare fragment's page from the
    rows the trigrams give, not by walking the organisation in id order."""
    sqlite_only(engine)
    response = await client.post(
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"u{n}",
                    "data": person(n, "Karin", "Sällsynt" if n == 7 else f"Vanlig{n}"),
                }
                for n in range(300)
            ],
        },
    )
    assert response.status_code == 200, response.text
    await statistics.analyse(engine)
    with sent_by(app.state.service.read_engine, "SELECT RESOURCES.") as sent:
        assert len(await found(client, 'name.familyName co "llsy"')) == 1
    page = next(statement for statement in sent if "resource_names MATCH" in statement[0])
    async with engine.connect() as connection:
        plan = str(
            (await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + page[0], page[1])).all()
        )
    assert "INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    assert "ix_resources_listing" not in plan, plan


async def test_the_server_makes_sqlites_statistics(
    settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Soon after it starts, the server analyses the database (``sqlite_stat1``)."""
    sqlite_only(engine)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DELETE FROM sqlite_stat1")
    monkeypatch.setattr(statistics, "FIRST", 0.01)
    app = create_app(settings, Domain())
    async with AsyncTestClient(app):  # runs the app's lifespan
        for _ in range(200):
            async with engine.connect() as connection:
                made = (
                    await connection.exec_driver_sql("SELECT count(*) FROM sqlite_stat1")
                ).scalar()
            if made:
                break
            await asyncio.sleep(0.02)
    assert made


async def test_a_fragments_count_is_asked_once_a_minute(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How many names hold a fragment is asked of the index once, then taken as known for
    ``COUNTS_KEPT`` seconds (only the way to its matches depends on it)."""
    engine = app.state.service.read_engine
    sqlite_only(engine)
    user = await create_user(
        client, "k@example.se", name={"givenName": "K", "familyName": "Kvarnström"}
    )

    async def probes() -> int:
        with captured(engine) as statements:
            assert await found(client, 'name.familyName co "varns"') == [user["id"]]
        return sum(s.startswith("SELECT (SELECT count(*)") for s in statements)

    assert await probes() == 1
    assert await probes() == 0
    monkeypatch.setattr(trigrams, "COUNTS_KEPT", 0.0)
    assert await probes() == 3  # each of the search's statements asks again
