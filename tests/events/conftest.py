"""Fixtures of the security event tests: a real server whose public URL is its own, no
receivers to begin with, and quick retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from extensions import EServices
from scim.events import delivery
from scim.operator import Operator, operating
from scim.settings import Settings
from tests.conftest import ESERVICES, SCIM, STATLIG, new_hsa_id, user_body
from tests.events.receiver import Receiver
from tests.live import free_port, live_server

PREFIX = "urn:ietf:params:scim:event:prov:"
GRANT = f"{STATLIG}:asylsokande-i-forskola"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-off and re-delivery in tenths of seconds, not seconds: same rules, less waiting."""
    monkeypatch.setattr(delivery, "MAX_BACKOFF", 0.2)
    monkeypatch.setattr(delivery, "POLL_INTERVAL", 0.1)


@pytest.fixture
async def no_receivers(engine: AsyncEngine, clean: None) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        for table in ("event_deliveries", "receivers", "security_events"):
            await connection.execute(text(f"DELETE FROM {table}"))
    yield
    async with engine.begin() as connection:
        for table in ("event_deliveries", "receivers"):
            await connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def server(settings: Settings, no_receivers: None) -> Iterator[str]:
    port = free_port()
    configured = replace(settings, public_url=f"http://127.0.0.1:{port}")
    with live_server(configured, port=port) as url:
        yield url


def push_receiver(server: str, audience: str = STATLIG) -> Receiver:
    return Receiver(
        jwks_url=f"{server}/events/jwks.json", issuer=f"{server}/scim/v2", audience=audience
    )


async def register(
    engine: AsyncEngine, service: str, url: str | None, org_number: str | None = None
) -> tuple[str, str | None]:
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(org_number) if org_number else None
        return await operator.add_receiver(service, push_url=url, tenant=tenant)


def scim_client(server: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server}/scim/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
        timeout=30,
    )


def with_permission(name: str, *values: str) -> dict[str, Any]:
    permissions = [{"value": value} for value in values]
    return user_body(name, **{ESERVICES: {"hsaId": new_hsa_id(), "permissions": permissions}})


def event_of(claims: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((uri, payload),) = claims["events"].items()
    return uri.removeprefix(PREFIX), payload


@asynccontextmanager
async def agreements_for_a_while(
    engine: AsyncEngine, settings: Settings, org_number: str, services: list[str]
) -> AsyncIterator[None]:
    """The organisation's agreements made ``services`` as the operator's command makes them,
    and what they were again afterwards."""
    domain = EServices.from_settings(settings)
    async with operating(engine, "tests", domain) as operator:
        tenant = await operator.tenant(org_number)
        held = await operator.agreements(tenant.id)
        await operator.set_agreements(tenant, services)
    try:
        yield
    finally:
        async with operating(engine, "tests", domain) as operator:
            await operator.set_agreements(tenant, held)
