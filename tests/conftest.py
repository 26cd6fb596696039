"""Fixtures: a migrated database (SQLite by default, PostgreSQL with SCIM_TEST_DATABASE_URL),
the app on it, and an HTTP client speaking to the app in process."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from litestar import Litestar
from sqlalchemy import URL, delete, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.operator import Operator
from scim.settings import Settings
from scim.storage.database import create_engine, upgrade
from scim.storage.tables import administrators

# Hypothesis would write ./.hypothesis, which pytest then warns about (warnings are errors):
# keep its storage out of the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "scim-tests-hypothesis")

SCIM = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ESERVICES = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"
ESERVICES_GROUP = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:Group"
# The e-services of the catalogue (extensions/catalogue.toml).
STATLIG = "ansok-om-statlig-ersattning"
ENSAMKOMMANDE = "se-och-andra-ansvar-for-ensamkommande"
LANDSTING = "e-tjanst-for-landsting"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@contextmanager
def fresh_database() -> Iterator[str]:
    """An empty database: a SQLite file, or with $SCIM_TEST_DATABASE_URL a PostgreSQL database
    created on that server and dropped afterwards (so concurrent runs never share state)."""
    configured = os.environ.get("SCIM_TEST_DATABASE_URL")
    if not configured:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{Path(directory) / 'test.db'}"
        return
    url = make_url(configured)
    name = f"scim_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


async def _admin(url: URL, statement: str) -> None:
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean(engine: AsyncEngine) -> None:
    """Every test starts with an empty default tenant."""
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM members"))
        await connection.execute(text("DELETE FROM resources"))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        default_page_size=50,
        max_page_size=200,
        max_payload_size=256 * 1024,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    app = create_app(settings)
    yield app
    await app.state.engine.dispose()


@dataclass(frozen=True)
class Organisation:
    id: int
    org_number: str
    name: str
    kind: str
    token: str  # of its identity system


@dataclass(frozen=True)
class Organisations:
    """Two municipalities and a region, made in this order (ids 1, 2, 3) for the session."""

    stockholm: Organisation
    goteborg: Organisation
    region: Organisation


@pytest.fixture(scope="session")
async def organisations(engine: AsyncEngine) -> Organisations:
    made = []
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        for org_number, name, kind, services in (
            ("2120000142", "Stockholms stad", "kommun", [STATLIG, ENSAMKOMMANDE]),
            ("2120001355", "Göteborgs stad", "kommun", [STATLIG]),
            ("2321000206", "Region Västernorrland", "region", [LANDSTING]),
        ):
            tenant = await operator.add_tenant(org_number, name, kind)
            await operator.set_agreements(tenant, services)
            _, token = await operator.issue_token(tenant)
            made.append(Organisation(tenant.id, org_number, name, kind, token))
    return Organisations(*made)


# An administrator of Stockholms stad, whose HSA-id a user there cannot have.
ADMIN_HSA = "SE2120000142-TADM1"


@pytest.fixture
async def administrator(engine: AsyncEngine, organisations: Organisations) -> AsyncIterator[str]:
    """ADMIN_HSA registered as an administrator of Stockholm, for one test."""
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.add_administrator(
            tenant, ADMIN_HSA, "Petra", "Admin", "petra.admin@stockholm.se"
        )
    try:
        yield ADMIN_HSA
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                delete(administrators).where(administrators.c.hsa_id == ADMIN_HSA)
            )


@contextmanager
def captured(*engines: AsyncEngine) -> Iterator[list[str]]:
    """The SQL every given engine sends while the block runs, in order."""
    statements: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    targets = list({id(e.sync_engine): e.sync_engine for e in engines}.values())
    for target in targets:
        event.listen(target, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", listener)


@contextmanager
def sent_by(engine: AsyncEngine, start: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements ``engine`` sends while the block runs that begin with ``start``, with
    their parameters (``tests.conftest.captured`` records the statements alone)."""
    sent: list[tuple[str, Any]] = []

    def listener(_c: Any, _cursor: Any, statement: str, parameters: Any, *_a: Any) -> None:
        if statement.lstrip().upper().startswith(start):
            sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)


@contextmanager
def through_the_cursor(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements SQLAlchemy's cursor executes while the block runs. The dialect's
    ``do_execute`` is heard, unlike ``before_cursor_execute``, without turning the direct
    path off."""
    executed: list[str] = []

    def listener(_cursor: Any, statement: str, *_: Any) -> None:
        executed.append(statement)

    event.listen(engine.sync_engine, "do_execute", listener)
    try:
        yield executed
    finally:
        event.remove(engine.sync_engine, "do_execute", listener)


def api_client(app: Litestar, token: str | None) -> httpx.AsyncClient:
    """An HTTP client speaking to the app in process, as the holder of ``token``."""
    headers = {"Content-Type": SCIM, "Accept": SCIM}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://scim.test/scim/v2",
        headers=headers,
    )


@pytest.fixture
async def client(
    app: Litestar, clean: None, organisations: Organisations
) -> AsyncIterator[httpx.AsyncClient]:
    """The identity system of Stockholms stad."""
    async with api_client(app, organisations.stockholm.token) as client:
        yield client


_HSA_SERIAL = itertools.count(1)


def new_hsa_id(org_number: str = "2120000142") -> str:
    """A fresh HSA-id, unique within the test run."""
    return f"SE{org_number}-T{next(_HSA_SERIAL):05d}"


def user_body(user_name: str, **attributes: Any) -> dict[str, Any]:
    """A User with the mandatory e-service extension (a fresh HSA-id) unless one is given."""
    schemas = list(attributes.pop("schemas", [USER_SCHEMA]))
    if ESERVICES not in schemas:
        schemas.append(ESERVICES)
    extension = attributes.pop(ESERVICES, None) or {"hsaId": new_hsa_id()}
    return {"schemas": schemas, "userName": user_name, ESERVICES: extension, **attributes}


async def create_user(
    client: httpx.AsyncClient, user_name: str, **attributes: Any
) -> dict[str, Any]:
    response = await client.post("/Users", json=user_body(user_name, **attributes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_group(
    client: httpx.AsyncClient,
    display_name: str,
    member_ids: list[str] = (),
    **attributes: Any,  # type: ignore[assignment]
) -> dict[str, Any]:
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "members": [{"value": member_id} for member_id in member_ids],
        **attributes,
    }
    response = await client.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
