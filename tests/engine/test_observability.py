"""Request ids and structured logs: one JSON line per request with its id, tenant and actor,
and nothing personal beyond an HSA-id (no query strings, tokens, cookies or bodies)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import suppress

import httpx
import pytest
from litestar import Litestar
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.observability import JsonFormatter, _incoming_id, log_config, watch_pool
from scim.storage.database import reads
from tests.conftest import Organisations, api_client
from tests.engine.conftest import user_body


async def test_every_response_carries_a_request_id(app: Litestar) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scim.test") as client:
        first = await client.get("/healthz")
        second = await client.get("/healthz")
        echoed = await client.get("/healthz", headers={"X-Request-ID": "idp-sync-42"})
        refused = await client.get("/healthz", headers={"X-Request-ID": "bad id;" * 20})
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert echoed.headers["x-request-id"] == "idp-sync-42"
    assert len(refused.headers["x-request-id"]) == 32  # not an id to pass on: a new one


def test_request_ids_differ_between_processes_forked_or_not() -> None:
    """A request's id is its process's random half and a serial number: a forked worker
    draws its own half, so that two workers never give one id."""
    ours = _incoming_id({"headers": []}), _incoming_id({"headers": []})
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, _incoming_id({"headers": []}).encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 64).decode()
    os.waitpid(child, 0)
    os.close(read)
    assert len(set(ours)) == 2 and ours[0][:16] == ours[1][:16]
    assert len(theirs) == 32 and theirs[:16] != ours[0][:16]


async def test_a_request_is_logged_as_json_with_tenant_and_actor_but_no_personal_data(
    app: Litestar,
    organisations: Organisations,
    clean: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scim.access")
    token = organisations.stockholm.token
    async with api_client(app, token) as client:
        created = await client.post("/Users", json=user_body("lisa.lund@stockholm.se"))
        listed = await client.get(
            "/Users", params={"filter": 'userName eq "lisa.lund@stockholm.se"'}
        )
    assert created.status_code == 201 and listed.status_code == 200
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    post, get = lines[-2:]
    assert post["requestId"] == created.headers["x-request-id"]
    assert post["method"] == "POST" and post["path"] == "/scim/v2/Users"
    assert post["status"] == 201 and post["durationMs"] >= 0
    assert post["tenant"] == organisations.stockholm.id
    assert post["actor"].startswith("client:")
    assert get["requestId"] == listed.headers["x-request-id"]
    logged = json.dumps(lines)
    assert "lisa.lund" not in logged  # neither the body nor the filter
    assert token not in logged


def test_serve_logs_json_and_never_uvicorns_access_log() -> None:
    config = log_config("info", access_log=True)
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
    assert config["loggers"]["scim.access"]["level"] == "INFO"
    assert log_config("info", access_log=False)["loggers"]["scim.access"]["level"] == "WARNING"
    record = logging.LogRecord("scim", logging.ERROR, "x.py", 1, "boom %s", ("now",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom now" and line["level"] == "error"
    assert line["time"].endswith("Z")


async def test_metrics_count_requests_by_route_status_and_tenant(
    app: Litestar, organisations: Organisations, clean: None
) -> None:
    async with api_client(app, organisations.goteborg.token) as client:
        for _ in range(3):
            assert (await client.get("/Users")).status_code == 200
        assert (await client.get("/Users/no-such-user")).status_code == 404
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scim.test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    tenant = organisations.goteborg.id
    assert samples[f'scim_tenant_requests_total{{status="2xx",tenant="{tenant}"}}'] >= 3
    assert samples[f'scim_tenant_requests_total{{status="4xx",tenant="{tenant}"}}'] >= 1
    by_route = (
        'scim_requests_total{app_name="scim",method="GET",'
        'path="/scim/v2/{endpoint}/{resource_id}",status_code="404"}'
    )
    assert samples[by_route] >= 1
    assert "scim_database_connections_in_use" in samples
    assert not any("no-such-user" in name for name in samples)  # routes, not ids


async def test_the_connections_in_use_are_sampled_from_the_pool(engine: AsyncEngine) -> None:
    """``scim_database_connections_in_use`` follows the pool, read from it every ``every``
    seconds by the server's lifespan (``watch_pool``), not counted at each checkout."""
    if engine.dialect.name == "sqlite" and ":memory:" in str(engine.url):
        pytest.skip("one connection is lent to all")

    def in_use() -> float | None:
        return REGISTRY.get_sample_value("scim_database_connections_in_use")

    async def sampled(expected: float) -> None:
        for _ in range(200):
            if in_use() == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{in_use()} connections in use, not {expected}")

    watching = asyncio.create_task(watch_pool(engine, every=0.01))
    try:
        await sampled(0)
        reading = reads(engine)  # two at once: SQLite's writers would wait for each other
        async with reading.connect() as first, reading.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            await sampled(2)
        await sampled(0)
    finally:
        watching.cancel()
        with suppress(asyncio.CancelledError):
            await watching
