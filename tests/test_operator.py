"""The operator's command line: organisations, agreements, administrators, system clients,
tokens and the audit log. ``scim tenant add`` and ``scim token issue`` are driven by scripts
outside the project, so their flags and output are pinned here."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from scim.app import create_app
from scim.cli import main
from scim.settings import Settings
from tests.conftest import ESERVICES, api_client, fresh_database, user_body


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database; the CLI's environment changes are undone afterwards."""
    monkeypatch.setenv("SCIM_DATABASE_URL", "unset")
    with fresh_database() as url:
        assert main(["db", "upgrade", "--database", url]) == 0
        yield url


def scim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scim.cli", *args], capture_output=True, text=True, check=False
    )


def api_status(url: str, token: str, method: str = "GET", path: str = "/Users") -> int:
    async def call() -> int:
        app = create_app(Settings(database_url=url))
        try:
            async with api_client(app, token) as client:
                body = user_body("probe@example.se") if method == "POST" else None
                response = await client.request(method, path, json=body)
                return response.status_code
        finally:
            await app.state.engine.dispose()

    return asyncio.run(call())


def test_tenant_add_and_token_issue_as_scripts_call_them(database: str) -> None:
    added = scim(
        "tenant",
        "add",
        "--org-number",
        "2120000142",
        "--name",
        "Stockholms stad",
        "--kind",
        "kommun",
        "--database",
        database,
    )
    assert added.returncode == 0, added.stderr
    issued = subprocess.run(
        [sys.executable, "-m", "scim.cli", "token", "issue", "--tenant", "2120000142"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SCIM_DATABASE_URL": database},
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("scim_") and " " not in token
    assert api_status(database, token) == 200
    assert api_status(database, token + "x") == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org-number", "2120000143", "--name", "X", "--kind", "kommun"], "check digit"),
        (["--org-number", "2321000016", "--name", "X", "--kind", "kommun"], "212000"),
        (["--org-number", "2120000142", "--name", " ", "--kind", "kommun"], "name"),
    ],
)
def test_tenant_add_refuses_bad_input(
    database: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tenant", "add", *args, "--database", database]) == 2
    assert message in capsys.readouterr().err
    assert main(["tenant", "list", "--database", database]) == 0
    assert capsys.readouterr().out == ""


def test_an_organisation_is_added_once(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["tenant", "add", "--org-number", "212000-0142", "--name", "Sthlm", "--kind", "kommun"]
    assert main([*args, "--database", database]) == 0
    assert main([*args, "--database", database]) == 2
    assert "already exists" in capsys.readouterr().err


def test_operator_workflow(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> str:
        capsys.readouterr()
        assert main([*args, "--database", database]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    def fails(*args: str) -> str:
        capsys.readouterr()
        assert main([*args, "--database", database]) == 2
        return capsys.readouterr().err

    run(
        "tenant",
        "add",
        "--org-number",
        "2321000016",
        "--name",
        "Region Stockholm",
        "--kind",
        "region",
    )
    run("tenant", "agreements", "--tenant", "2321000016", "e-tjanst-for-landsting")
    run(
        "admin",
        "add",
        "--tenant",
        "2321000016",
        "--hsa-id",
        "se2321000016-4hk5",
        "--given-name",
        "Ada",
        "--family-name",
        "Admin",
        "--email",
        "ada@regionstockholm.se",
    )
    assert "SE2321000016-4HK5  Ada Admin" in run("admin", "list", "--tenant", "2321000016")
    assert "last administrator" in fails(
        "admin", "remove", "--tenant", "2321000016", "--hsa-id", "SE2321000016-4HK5"
    )
    run(
        "admin",
        "add",
        "--tenant",
        "2321000016",
        "--hsa-id",
        "SE2321000016-4HK6",
        "--given-name",
        "Bo",
        "--family-name",
        "Backup",
        "--email",
        "bo@regionstockholm.se",
    )
    assert "already an administrator" in fails(
        "admin",
        "add",
        "--tenant",
        "2321000016",
        "--hsa-id",
        "SE2321000016-4HK6",
        "--given-name",
        "Bo",
        "--family-name",
        "Backup",
        "--email",
        "bo@regionstockholm.se",
    )
    run("admin", "remove", "--tenant", "2321000016", "--hsa-id", "SE2321000016-4HK5")
    assert "4HK5" not in run("admin", "list", "--tenant", "2321000016")
    assert "not an HSA-id" in fails(
        "admin",
        "add",
        "--tenant",
        "2321000016",
        "--hsa-id",
        "x",
        "--given-name",
        "A",
        "--family-name",
        "B",
        "--email",
        "a@b.se",
    )

    listed = run("tenant", "list")
    assert "2321000016  region  Region Stockholm" in listed
    assert "administrators=1" in listed and "agreements=e-tjanst-for-landsting" in listed

    assert "64 hex digits" in fails(
        "client", "add", "--tenant", "2321000016", "--name", "IdP", "--fingerprint", "abc"
    )
    run(
        "client",
        "add",
        "--tenant",
        "2321000016",
        "--name",
        "Region IdP",
        "--hsa-id",
        "SE2321000016-F001",
    )
    assert "Region IdP  hsa-id=SE2321000016-F001" in run("client", "list", "--tenant", "2321000016")

    issued = run("token", "issue", "--tenant", "2321000016", "--days", "30")
    token = issued.strip().splitlines()[-1]
    assert "valid for 30 days" in issued
    token_id = run("token", "list", "--tenant", "2321000016").split()[0]
    assert api_status(database, token, "POST") == 201
    run("token", "revoke", "--tenant", "2321000016", "--id", token_id)
    assert "revoked" in run("token", "list", "--tenant", "2321000016")
    assert api_status(database, token) == 401
    assert "no active token" in fails("token", "revoke", "--tenant", "2321000016", "--id", token_id)
    assert "no organisation" in fails("token", "issue", "--tenant", "2120000142")

    records = [json.loads(line) for line in run("audit", "export").splitlines()]
    actions = [record["action"] for record in records]
    assert actions[:4] == ["tenant.add", "agreements.set", "administrator.add", "administrator.add"]
    assert {
        "administrator.remove",
        "client.register",
        "token.issue",
        "token.revoke",
        "User.create",
    } <= set(actions)
    created = next(record for record in records if record["action"] == "User.create")
    assert created["organisation"] == "2321000016"
    assert created["actor"].startswith("client:")
    assert created["changes"]["userName"] == "probe@example.se"
    assert all(record["organisation"] == "2321000016" for record in records)
    assert run("audit", "export", "--tenant", "2321000016").count("\n") == len(records)
    # Progress goes to stderr, so that stdout stays JSON lines.
    assert main(["audit", "export", "--database", database]) == 0
    assert f"exported {len(records)}/{len(records)} audit records" in capsys.readouterr().err


def test_demo_load_makes_three_organisations_and_a_working_token(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "load", "--database", database]) == 0
    printed = capsys.readouterr()
    token = printed.out.strip().splitlines()[-1]
    assert "[1/3] Stockholms stad: 5 users and a group" in printed.err
    assert "[3/3] Region Västernorrland" in printed.err
    assert main(["tenant", "list", "--database", database]) == 0
    listed = capsys.readouterr().out
    assert "Stockholms stad" in listed and "Göteborgs stad" in listed and "region" in listed

    async def users() -> int:
        app = create_app(Settings(database_url=database))
        try:
            async with api_client(app, token) as client:
                body = (await client.get("/Users")).json()
                return int(body["totalResults"])
        finally:
            await app.state.engine.dispose()

    assert asyncio.run(users()) == 5
    assert main(["demo", "load", "--database", database]) == 0
    assert "already present" in capsys.readouterr().out
    assert asyncio.run(users()) == 5


def test_http_is_refused_without_credentials(database: str) -> None:
    async def anonymous() -> httpx.Response:
        app = create_app(Settings(database_url=database))
        try:
            async with api_client(app, None) as client:
                return await client.get("/Users")
        finally:
            await app.state.engine.dispose()

    response = asyncio.run(anonymous())
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == "401"


def test_a_user_cannot_be_made_an_administrator_and_holders_are_listed(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "tenant",
                "add",
                "--org-number",
                "2120000142",
                "--name",
                "Sthlm",
                "--kind",
                "kommun",
                "--database",
                database,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "tenant",
                "agreements",
                "--tenant",
                "2120000142",
                "ansok-om-statlig-ersattning",
                "--database",
                database,
            ]
        )
        == 0
    )
    assert main(["token", "issue", "--tenant", "2120000142", "--database", database]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    value = "ansok-om-statlig-ersattning:grundersattning"

    async def enrol() -> str:
        app = create_app(Settings(database_url=database))
        try:
            async with api_client(app, token) as client:
                body = user_body(
                    "maja@example.se",
                    **{ESERVICES: {"hsaId": "SE2120000142-OP1", "permissions": [{"value": value}]}},
                )
                response = await client.post("/Users", json=body)
                assert response.status_code == 201, response.text
                user_id: str = response.json()["id"]
                return user_id
        finally:
            await app.state.engine.dispose()

    user_id = asyncio.run(enrol())
    assert (
        main(
            [
                "admin",
                "add",
                "--tenant",
                "2120000142",
                "--hsa-id",
                "se2120000142-op1",
                "--given-name",
                "Maja",
                "--family-name",
                "Ek",
                "--email",
                "m@e.se",
                "--database",
                database,
            ]
        )
        == 2
    )
    assert "is a user of Sthlm" in capsys.readouterr().err
    assert main(["catalogue", "holders", value, "--database", database]) == 0
    assert capsys.readouterr().out.split() == ["2120000142", "User", user_id, "maja@example.se"]
    assert (
        main(
            [
                "catalogue",
                "holders",
                "ansok-om-statlig-ersattning:grundersattningX",
                "--database",
                database,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == ""
