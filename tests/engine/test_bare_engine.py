"""The engine with no domain installed (``scim.hooks.Domain()``): core User and Group only,
served, filtered, patched and bulk-written as RFC 7643/7644 say, and passed by scim2-tester."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from conformance.check import failures, run
from scim.app import create_app
from scim.hooks import Domain
from scim.settings import Settings
from tests.conftest import (
    ENTERPRISE,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Organisations,
    api_client,
    patch_body,
)
from tests.live import live_server

ENGINE = Path(__file__).resolve().parents[2] / "scim"
# The app factory joins engine and domain; the CLI runs the domain's commands.
JOINING = {ENGINE / "app.py", ENGINE / "cli.py"}


@pytest.fixture(scope="module")
async def bare_app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    app = create_app(settings, Domain())
    yield app
    await app.state.engine.dispose()


@pytest.fixture
async def bare(
    bare_app: Litestar, clean: None, organisations: Organisations
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(bare_app, organisations.stockholm.token) as client:
        yield client


def user(user_name: str, /, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def test_the_engine_imports_nothing_of_the_domain() -> None:
    """Outside the app factory and the CLI, no module of ``scim`` imports ``extensions``."""
    crossing = []
    for path in ENGINE.rglob("*.py"):
        if path in JOINING:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            crossing += [f"{path}: {name}" for name in names if name.split(".")[0] == "extensions"]
    assert crossing == []


def test_the_engine_loads_without_the_domain() -> None:
    """Every engine module but the joining ones imports with ``extensions`` absent."""
    modules = sorted(
        ".".join(path.relative_to(ENGINE.parent).with_suffix("").parts)
        for path in ENGINE.rglob("*.py")
        if path not in JOINING and "migrations" not in path.parts
    )
    program = (
        "import sys; sys.modules['extensions'] = None\n"
        + "".join(f"import {module}\n" for module in modules)
        + "print(len(sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(modules) > 30


async def test_discovery_describes_core_user_and_group_only(bare: httpx.AsyncClient) -> None:
    schemas = (await bare.get("/Schemas")).json()["Resources"]
    assert [schema["id"] for schema in schemas] == [USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA]
    types = (await bare.get("/ResourceTypes")).json()["Resources"]
    extensions = {t["name"]: [e["schema"] for e in t.get("schemaExtensions", [])] for t in types}
    assert extensions == {"User": [ENTERPRISE], "Group": []}


async def test_a_core_user_is_created_read_filtered_and_patched(bare: httpx.AsyncClient) -> None:
    body = user(
        "Ada@example.org",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        emails=[{"value": "ada@example.org", "primary": True}],
        entitlements=[{"value": "given by the client"}],
        **{ENTERPRISE: {"employeeNumber": "1815"}},
    )
    created = await bare.post("/Users", json=body)
    assert created.status_code == 201, created.text
    document = created.json()
    # Without a domain, entitlements are the client's to write (RFC 7643 §4.1.2).
    assert document["entitlements"] == [{"value": "given by the client"}]
    assert document[ENTERPRISE] == {"employeeNumber": "1815"}
    found = await bare.get("/Users", params={"filter": 'userName eq "ada@EXAMPLE.org"'})
    assert [r["id"] for r in found.json()["Resources"]] == [document["id"]]
    by_entitlement = await bare.get(
        "/Users", params={"filter": 'entitlements[value eq "given by the client"]'}
    )
    assert by_entitlement.json()["totalResults"] == 1
    patched = await bare.patch(
        f"/Users/{document['id']}",
        json=patch_body({"op": "replace", "path": "name.familyName", "value": "King"}),
    )
    assert patched.status_code == 200 and patched.json()["name"]["familyName"] == "King"
    taken = await bare.post("/Users", json=user("ADA@example.org"))
    assert taken.status_code == 409 and taken.json()["scimType"] == "uniqueness"


async def test_groups_and_bulk_need_no_domain(bare: httpx.AsyncClient) -> None:
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": f"u{n}", "data": user(f"u{n}@example.org")}
        for n in range(3)
    ]
    operations.append(
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Team",
                "members": [{"value": f"bulkId:u{n}"} for n in range(3)],
            },
        }
    )
    response = await bare.post(
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        },
    )
    assert [op["status"] for op in response.json()["Operations"]] == ["201"] * 4
    group = (await bare.get("/Groups", params={"filter": 'displayName eq "Team"'})).json()
    assert len(group["Resources"][0]["members"]) == 3
    member = group["Resources"][0]["members"][0]["value"]
    groups = (await bare.get(f"/Users/{member}")).json()["groups"]
    assert [g["display"] for g in groups] == ["Team"]


async def test_the_domain_routes_are_not_served(bare: httpx.AsyncClient) -> None:
    response = await bare.get(str(bare.base_url.join("/catalogue")))
    assert response.status_code == 404
    # Nor described: the OpenAPI document lists the domain's routes only when it has them.
    described = (await bare.get(str(bare.base_url.join("/openapi.json")))).json()["paths"]
    assert "/catalogue" not in described and "/history/{endpoint}/{id}" in described


@pytest.fixture
def bare_server(settings: Settings, clean: None) -> Iterator[str]:
    with live_server(settings, Domain()) as root:
        yield f"{root}{settings.base_path}"


def test_scim2_tester_passes_the_bare_engine(
    bare_server: str, organisations: Organisations
) -> None:
    results = run(bare_server, token=organisations.stockholm.token)
    assert len(results) > 100
    assert failures(results) == []
