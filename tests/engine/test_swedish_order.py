"""Names sort in Swedish order (z, å, ä, ö; case-insensitive; é as e, ü as y, æ as ä,
ø as ö), on both databases, from an index of the server's own sort keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.protocol.folding import sort_key
from scim.service import search_keys
from scim.storage.tables import resources
from tests.conftest import GROUP_SCHEMA, Organisations, sent_by
from tests.engine.conftest import create_user

# As they must come, ascending.
IN_ORDER = [
    "Adam",
    "éva",
    "Ivar",
    "Üller",
    "Yngve",
    "Zoran",
    "Åke",
    "åsa",
    "Ægir",
    "Ängel",
    "Örjan",
    "Øystein",
]


async def listed(client: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [r.get("displayName") or r["name"]["givenName"] for r in body["Resources"]]


def test_the_sort_key_orders_as_swedish_does() -> None:
    assert sorted(["Örjan", "Åsa", "Zoran", "Ängel"], key=sort_key) == [
        "Zoran",
        "Åsa",
        "Ängel",
        "Örjan",
    ]
    assert sort_key("ÅSA") == sort_key("åsa")
    assert sort_key("Éva") == sort_key("eva") and sort_key("Ægir") == sort_key("ägir")


@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_users_sort_by_first_and_last_name_in_swedish_order(
    client: httpx.AsyncClient, order: str
) -> None:
    for number, name in enumerate(reversed(IN_ORDER)):
        await create_user(
            client, f"u{number}", name={"givenName": name, "familyName": name}, displayName=name
        )
    expected = IN_ORDER if order == "ascending" else IN_ORDER[::-1]
    for attribute in ("name.givenName", "name.familyName", "displayName"):
        params = {"sortBy": attribute, "sortOrder": order, "count": 50}
        assert await listed(client, "/Users", **params) == expected
        # Cursor paging walks the same order, a page at a time.
        seen: list[str] = []
        cursor = ""
        while cursor is not None:
            response = await client.get("/Users", params={**params, "count": 5, "cursor": cursor})
            body = response.json()
            seen += [r["displayName"] for r in body["Resources"]]
            cursor = body.get("nextCursor")
        assert seen == expected


async def test_groups_sort_by_name_in_swedish_order(client: httpx.AsyncClient) -> None:
    for name in reversed(IN_ORDER):
        response = await client.post(
            "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": name}
        )
        assert response.status_code == 201, response.text
    assert await listed(client, "/Groups", sortBy="displayName") == IN_ORDER


async def test_a_sorted_page_is_read_from_the_sort_key_index(
    app: Litestar,
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    organisations: Organisations,
) -> None:
    """PostgreSQL reads the ids of the first page of a large organisation's users sorted by
    first name from ``ix_resources_given_name_sort`` alone, not by sorting every row."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    tenant = organisations.stockholm.id
    now = datetime.now(UTC)
    rows = []
    for number in range(5000):
        data = {"userName": f"many{number}", "name": {"givenName": IN_ORDER[number % 12]}}
        rows.append(
            {
                "tenant_id": tenant,
                "id": str(uuid.uuid4()),
                "resource_type": "User",
                "created": now,
                "last_modified": now,
                "version": 1,
                "data": data,
                **search_keys(data),
            }
        )
    async with engine.begin() as connection:
        await connection.execute(insert(resources), rows)
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        # As autovacuum leaves a table: its pages marked all-visible, its statistics read.
        await autocommit.execute(text("VACUUM ANALYZE resources"))
    with sent_by(app.state.service.read_engine, "SELECT") as sent:
        page = await client.get("/Users", params={"sortBy": "name.givenName", "count": 25})
    assert page.status_code == 200, page.text
    ((statement, parameters),) = [(s, p) for s, p in sent if "ORDER BY" in s]
    async with engine.connect() as connection:
        explained = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        plan = explained.scalars().all()
    # Migration 0015: the type is in the index, so the ids are read from it alone.
    assert any("Index Only Scan using ix_resources_given_name_sort" in line for line in plan), plan
