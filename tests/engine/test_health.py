"""Liveness and readiness for load balancers, and what a request meets while the database is
down: a fast 503 with a SCIM error body, never a hang or a stack trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from scim.app import create_app
from scim.errors import ERROR_SCHEMA
from scim.hooks import Domain
from scim.settings import Settings
from scim.storage.database import alembic_script
from tests.conftest import Organisations, api_client, fresh_database

# Nothing listens on port 1: connecting is refused at once, as when PostgreSQL is down.
NO_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/test"


@pytest.fixture
async def down() -> AsyncIterator[Litestar]:
    app = create_app(Settings(database_url=NO_DATABASE), Domain())
    yield app
    await app.state.engine.dispose()


def _root(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scim.test")


async def test_healthz_answers_without_credentials(app: Litestar) -> None:
    async with _root(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_says_ready_on_a_migrated_database(app: Litestar) -> None:
    async with _root(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["revision"] == alembic_script().get_current_head()


def test_readyz_is_red_until_the_database_is_migrated() -> None:
    async def ready(url: str) -> httpx.Response:
        app = create_app(Settings(database_url=url), Domain())
        try:
            async with _root(app) as client:
                return await client.get("/readyz")
        finally:
            await app.state.engine.dispose()

    with fresh_database() as url:
        response = asyncio.run(ready(url))
    assert response.status_code == 503
    assert response.json()["database"] == "not migrated"


async def test_with_the_database_down_health_is_green_and_readiness_red(down: Litestar) -> None:
    async with _root(down) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/Users"), ("POST", "/Users"), ("GET", "/Groups/x"), ("POST", "/Bulk")],
)
async def test_with_the_database_down_requests_fail_fast_with_503(
    down: Litestar, method: str, path: str
) -> None:
    async with api_client(down, "scim_sometoken") as client:
        started = time.monotonic()
        response = await client.request(method, path, json={})
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "503"
    assert "database is unavailable" in body["detail"]
    assert "Traceback" not in response.text
    assert elapsed < 5


async def test_every_response_is_safe_to_open_in_a_browser(
    app: Litestar, organisations: Organisations
) -> None:
    async with api_client(app, organisations.stockholm.token) as client:
        responses = [
            await client.get("/Users"),
            await client.get("/ServiceProviderConfig"),
            await client.get("/nowhere"),
        ]
    async with _root(app) as client:
        responses += [await client.get("/admin/"), await client.get("/admin/app.js")]
    for response in responses:
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # plain HTTP here
