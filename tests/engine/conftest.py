"""The engine's tests run on the bare engine: ``create_app(settings, Domain())``, core User
and Group with the enterprise extension, no e-service domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.hooks import Domain
from scim.settings import Settings
from tests.conftest import USER_SCHEMA


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    app = create_app(settings, Domain())
    yield app
    await app.state.engine.dispose()


def user_body(user_name: str, **attributes: Any) -> dict[str, Any]:
    """A core User."""
    schemas = list(attributes.pop("schemas", [USER_SCHEMA]))
    return {"schemas": schemas, "userName": user_name, **attributes}


async def create_user(
    client: httpx.AsyncClient, user_name: str, **attributes: Any
) -> dict[str, Any]:
    response = await client.post("/Users", json=user_body(user_name, **attributes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
