"""Rate limits per client and per organisation: 429 with Retry-After and a SCIM error body,
counted over every worker through the database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.errors import ERROR_SCHEMA
from scim.hooks import Domain
from scim.operator import Operator
from scim.ratelimit import KEEP_WINDOWS_FOR
from scim.settings import Settings
from scim.storage.tables import rate_counts
from tests.conftest import Organisations, api_client, captured

# Long windows, so that a test's requests never straddle two of them.
WINDOW = 3600.0


async def _limited_app(settings: Settings, per_client: int, per_tenant: int) -> Litestar:
    app = create_app(
        replace(settings, rate_limit_client=per_client, rate_limit_tenant=per_tenant), Domain()
    )
    app.state.rate_limiter.window = WINDOW
    return app


@pytest.fixture
async def limited(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    app = await _limited_app(settings, per_client=5, per_tenant=8)
    yield app
    await app.state.engine.dispose()


async def _second_token(engine: AsyncEngine, org_number: str) -> str:
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(org_number)
        client_id = await operator.register_client(tenant, "A second identity system")
        return (await operator.issue_token(tenant, client_id=client_id))[1]


def assert_429(response: httpx.Response, limit: int, whose: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "429"
    assert f"More than {limit} requests" in body["detail"] and whose in body["detail"]


async def test_a_client_over_its_limit_gets_429_with_retry_after(
    limited: Litestar, organisations: Organisations
) -> None:
    async with api_client(limited, organisations.stockholm.token) as client:
        for _ in range(5):
            assert (await client.get("/Users")).status_code == 200
        assert_429(await client.get("/Users"), 5, "this client")
        # Refused requests change nothing either.
        assert_429(await client.post("/Users", json={}), 5, "this client")
    # Another organisation's client is not affected.
    async with api_client(limited, organisations.goteborg.token) as client:
        assert (await client.get("/Users")).status_code == 200


async def test_an_organisations_clients_share_its_limit(
    limited: Litestar, engine: AsyncEngine, organisations: Organisations
) -> None:
    second = await _second_token(engine, organisations.region.org_number)
    async with (
        api_client(limited, organisations.region.token) as first_client,
        api_client(limited, second) as second_client,
    ):
        for _ in range(4):
            assert (await first_client.get("/Groups")).status_code == 200
            assert (await second_client.get("/Groups")).status_code == 200
        assert_429(await first_client.get("/Groups"), 8, "this organisation")
        assert_429(await second_client.get("/Groups"), 8, "this organisation")


async def test_workers_see_each_others_requests_through_the_database(
    settings: Settings, engine: AsyncEngine, organisations: Organisations
) -> None:
    token = await _second_token(engine, organisations.goteborg.org_number)
    first = await _limited_app(settings, per_client=5, per_tenant=0)
    second = await _limited_app(settings, per_client=5, per_tenant=0)
    try:
        async with api_client(first, token) as client:
            for _ in range(3):
                assert (await client.get("/Users")).status_code == 200
        await first.state.rate_limiter.sync()
        async with api_client(second, token) as client:
            assert (await client.get("/Users")).status_code == 200
            await second.state.rate_limiter.sync()  # learns of the first worker's three
            assert (await client.get("/Users")).status_code == 200
            assert_429(await client.get("/Users"), 5, "this client")
    finally:
        await first.state.engine.dispose()
        await second.state.engine.dispose()


async def test_no_limit_when_set_to_zero(settings: Settings, organisations: Organisations) -> None:
    app = await _limited_app(settings, per_client=0, per_tenant=0)
    try:
        assert not app.state.rate_limiter.enabled
        async with api_client(app, organisations.stockholm.token) as client:
            for _ in range(20):
                assert (await client.get("/ServiceProviderConfig")).status_code == 200
                assert (await client.get("/Users", params={"count": 0})).status_code == 200
    finally:
        await app.state.engine.dispose()


async def test_windows_older_than_a_minute_are_dropped_once(
    settings: Settings, engine: AsyncEngine, organisations: Organisations
) -> None:
    """A sync drops the windows more than ``KEEP_WINDOWS_FOR`` seconds old, once each: a
    sync in the same second finds nothing more to drop and sends no DELETE."""
    app = await _limited_app(settings, per_client=1000, per_tenant=0)
    limiter = app.state.rate_limiter
    limiter.window = 1.0
    now = int(time.time())
    stale, kept = now - KEEP_WINDOWS_FOR - 5, now - KEEP_WINDOWS_FOR + 30
    async with engine.begin() as connection:
        await connection.execute(
            insert(rate_counts),
            [
                {"key": "old", "window": stale, "count": 1},
                {"key": "old", "window": kept, "count": 1},
            ],
        )
    try:
        async with api_client(app, organisations.stockholm.token) as client:
            assert (await client.get("/Users", params={"count": 0})).status_code == 200
            started = int(time.time())
            with captured(app.state.engine) as first:
                await limiter.sync()
            assert (await client.get("/Users", params={"count": 0})).status_code == 200
            with captured(app.state.engine) as second:
                await limiter.sync()
            same_second = int(time.time()) == started
        async with engine.connect() as connection:
            left = await connection.execute(
                select(rate_counts.c.window).where(rate_counts.c.key == "old")
            )
            assert left.scalars().all() == [kept]
        assert sum("DELETE FROM rate_counts" in s for s in first) == 1
        if same_second:  # else a window more may be due for dropping
            assert not any("DELETE" in s for s in second), second
    finally:
        async with engine.begin() as connection:
            await connection.execute(delete(rate_counts).where(rate_counts.c.key == "old"))
        await app.state.engine.dispose()
