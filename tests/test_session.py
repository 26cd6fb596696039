"""Browser sessions: an administrator logs in once with their certificate, then acts by an
HttpOnly cookie with a CSRF token on every change; logout ends the session on the server. Demo
mode lets a newcomer pick a demo administrator, only from this machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scim import cli
from scim.api.session import NO_CARD, NOT_ADMINISTRATOR, NOT_REGISTERED
from scim.app import create_app
from scim.auth import sessions
from scim.errors import ERROR_SCHEMA
from scim.operator import DEFAULT_CLIENT, Operator
from scim.settings import Settings
from scim.storage.tables import audit_log
from scim.storage.tables import sessions as sessions_table
from tests.conftest import (
    ESERVICES,
    Organisations,
    api_client,
    captured,
    create_user,
    fresh_database,
    new_hsa_id,
    user_body,
)
from tests.pki import Authority, Issued

PROXY = ("10.5.5.5", 443)
LOOPBACK = ("127.0.0.1", 51000)
ORIGIN = "https://scim.test"
ROOT = Authority("Session Test Root")
ISSUING = Authority("Session Test Issuing CA", ROOT)
STOCKHOLM = "Stockholms stad"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("session") / "ca.pem"
    path.write_bytes(ROOT.pem + ISSUING.pem)
    return path


@pytest.fixture(scope="module")
async def cert_app(database_url: str, engine: AsyncEngine, bundle: Path) -> AsyncIterator[Litestar]:
    app = create_app(
        Settings(database_url=database_url, ca_bundle=str(bundle), trusted_proxies=(PROXY[0],))
    )
    yield app
    await app.state.engine.dispose()


@pytest.fixture(scope="module")
async def demo_app(database_url: str, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    app = create_app(Settings(database_url=database_url, demo=True))
    yield app
    await app.state.engine.dispose()


@pytest.fixture(scope="module")
async def keeper(engine: AsyncEngine, organisations: Organisations) -> str:
    """An administrator of Stockholm who stays, so that the test's own can be removed."""
    hsa_id = new_hsa_id()
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.add_administrator(tenant, hsa_id, "Kim", "Kvar", "kim@stockholm.se")
    return hsa_id


@pytest.fixture
async def administrator(
    engine: AsyncEngine, organisations: Organisations, keeper: str
) -> AsyncIterator[str]:
    """A fresh administrator of Stockholm (its HSA-id), removed afterwards."""
    hsa_id = new_hsa_id()
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.add_administrator(tenant, hsa_id, "Ada", "Admin", "ada@stockholm.se")
    yield hsa_id
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.remove_administrator(tenant, hsa_id)


def card(hsa_id: str, organisation: str = STOCKHOLM, **options: Any) -> Issued:
    return ISSUING.issue(f"Person {hsa_id}", hsa_id=hsa_id, organisation=organisation, **options)


def browser(
    app: Litestar,
    *,
    certificate: Issued | None = None,
    session: str | None = None,
    csrf: str | None = None,
    peer: tuple[str, int] = PROXY,
    origin: str = ORIGIN,
) -> httpx.AsyncClient:
    """The browser client: its card forwarded by the trusted proxy, or its session cookie."""
    headers = {"Content-Type": "application/json"}
    if certificate is not None:
        headers["X-SSL-Client-Cert"] = quote(certificate.pem.decode())
    if session is not None:
        headers["Cookie"] = f"{sessions.COOKIE}={session}"
    if csrf is not None:
        headers[sessions.CSRF_HEADER] = csrf
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=peer), base_url=origin, headers=headers
    )


def session_cookie(response: httpx.Response) -> tuple[str, set[str]]:
    """The session cookie's value and its attributes (lower case) from Set-Cookie."""
    for header in response.headers.get_list("set-cookie"):
        name_value, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = name_value.partition("=")
        if name == sessions.COOKIE:
            return value.strip('"'), {attribute.lower() for attribute in attributes}
    raise AssertionError(f"no {sessions.COOKIE} cookie in {response.headers}")


async def log_in(app: Litestar, hsa_id: str) -> tuple[str, dict[str, Any]]:
    async with browser(app, certificate=card(hsa_id)) as client:
        response = await client.post("/session")
    assert response.status_code == 200, response.text
    return session_cookie(response)[0], response.json()


async def audit_records(engine: AsyncEngine, action: str, actor: str) -> list[Any]:
    async with engine.connect() as connection:
        statement = select(audit_log).where(
            audit_log.c.action == action, audit_log.c.actor == actor
        )
        return list((await connection.execute(statement)).all())


async def test_an_administrator_logs_in_acts_by_cookie_and_logs_out(
    app: Litestar,
    cert_app: Litestar,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    organisations: Organisations,
    administrator: str,
) -> None:
    ours = await create_user(client, "anna@stockholm.se")
    async with api_client(app, organisations.goteborg.token) as goteborg:
        theirs = await create_user(goteborg, "karin@goteborg.se")

    async with browser(cert_app, certificate=card(administrator)) as card_holder:
        response = await card_holder.post("/session")
    assert response.status_code == 200, response.text
    session_id, attributes = session_cookie(response)
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert not any(attribute.startswith(("max-age", "expires")) for attribute in attributes)
    body = response.json()
    csrf = body["csrfToken"]
    assert body["name"] == "Ada Admin"
    assert body["hsaId"] == administrator
    assert body["organisation"] == {"name": STOCKHOLM, "kind": "kommun"}
    assert len(session_id) >= 43 and session_id not in response.text
    async with engine.connect() as connection:
        stored = (await connection.execute(select(sessions_table.c.id_hash))).scalars().all()
    assert sessions.id_hash(session_id) in stored and session_id not in stored
    assert len(await audit_records(engine, "session.login", administrator)) == 1

    async with browser(cert_app, session=session_id) as cookie:
        current = await cookie.get("/session")
        assert current.status_code == 200
        assert current.json() == body
        listed = await cookie.get("/scim/v2/Users")
        assert listed.status_code == 200, listed.text
        assert [user["id"] for user in listed.json()["Resources"]] == [ours["id"]]
        assert (await cookie.get(f"/scim/v2/Users/{ours['id']}")).status_code == 200
        assert (await cookie.get(f"/scim/v2/Users/{theirs['id']}")).status_code == 404
        assert (await cookie.get("/catalogue")).status_code == 200

        refused = await cookie.post("/scim/v2/Users", json=user_body("bo@stockholm.se"))
        assert refused.status_code == 403
        assert refused.json()["schemas"] == [ERROR_SCHEMA]
        assert sessions.CSRF_HEADER in refused.json()["detail"]
        wrong = await cookie.post(
            "/scim/v2/Users",
            json=user_body("bo@stockholm.se"),
            headers={sessions.CSRF_HEADER: csrf + "x"},
        )
        assert wrong.status_code == 403
        for method in ("PUT", "PATCH", "DELETE"):
            response = await cookie.request(method, f"/scim/v2/Users/{ours['id']}", json={})
            assert response.status_code == 403, (method, response.text)
        # Nothing was written.
        assert (await client.get("/Users", params={"count": 0})).json()["totalResults"] == 1

        created = await cookie.post(
            "/scim/v2/Users",
            json=user_body("bo@stockholm.se"),
            headers={sessions.CSRF_HEADER: csrf},
        )
        assert created.status_code == 201, created.text
        records = await audit_records(engine, "User.create", administrator)
        assert [record.resource_id for record in records] == [created.json()["id"]]
        assert records[0].tenant_id == organisations.stockholm.id

        not_without_token = await cookie.delete("/session")
        assert not_without_token.status_code == 403
        assert (await cookie.get("/session")).status_code == 200
        logged_out = await cookie.delete("/session", headers={sessions.CSRF_HEADER: csrf})
        assert logged_out.status_code == 204
        assert session_cookie(logged_out)[0] == ""
        assert len(await audit_records(engine, "session.logout", administrator)) == 1
        async with engine.connect() as connection:
            stored = (await connection.execute(select(sessions_table.c.id_hash))).scalars().all()
        assert sessions.id_hash(session_id) not in stored

    # The old cookie, replayed, is refused everywhere.
    async with browser(cert_app, session=session_id, csrf=csrf) as replayed:
        for method, path in (
            ("GET", "/session"),
            ("GET", "/scim/v2/Users"),
            ("POST", "/scim/v2/Users"),
            ("DELETE", "/session"),
        ):
            response = await replayed.request(
                method, path, json=user_body("cy@stockholm.se") if method == "POST" else None
            )
            assert response.status_code == 401, (method, path, response.text)
    assert (await client.get("/Users", params={"count": 0})).json()["totalResults"] == 2


async def test_certificates_and_tokens_need_no_csrf_token(
    cert_app: Litestar, client: httpx.AsyncClient, administrator: str
) -> None:
    async with browser(cert_app, certificate=card(administrator)) as card_holder:
        created = await card_holder.post("/scim/v2/Users", json=user_body("di@stockholm.se"))
    assert created.status_code == 201, created.text
    assert (await client.post("/Users", json=user_body("ed@stockholm.se"))).status_code == 201


async def test_an_expired_session_is_refused(
    cert_app: Litestar, engine: AsyncEngine, administrator: str
) -> None:
    session_id, _ = await log_in(cert_app, administrator)
    async with engine.begin() as connection:
        await connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id_hash == sessions.id_hash(session_id))
            .values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    async with browser(cert_app, session=session_id) as cookie:
        assert (await cookie.get("/scim/v2/Users")).status_code == 401
        response = await cookie.get("/session")
    assert response.status_code == 401
    assert response.json()["status"] == "401"
    assert session_cookie(response)[0] == ""


async def test_use_moves_the_idle_deadline_but_never_past_eight_hours(
    cert_app: Litestar, engine: AsyncEngine, administrator: str
) -> None:
    session_id, _ = await log_in(cert_app, administrator)
    key = sessions_table.c.id_hash == sessions.id_hash(session_id)

    async def expires_after(created: datetime) -> datetime:
        async with engine.begin() as connection:
            await connection.execute(
                update(sessions_table)
                .where(key)
                .values(created=created, expires=datetime.now(UTC) + timedelta(minutes=2))
            )
        async with browser(cert_app, session=session_id) as cookie:
            assert (await cookie.get("/scim/v2/Users")).status_code == 200
        async with engine.connect() as connection:
            value = (await connection.execute(select(sessions_table.c.expires).where(key))).scalar()
        assert value is not None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    now = datetime.now(UTC)
    moved = await expires_after(now)
    assert (
        now + sessions.IDLE - timedelta(minutes=1)
        < moved
        <= now + sessions.IDLE + timedelta(minutes=1)
    )
    long_ago = now - sessions.LIFETIME + timedelta(minutes=5)
    assert await expires_after(long_ago) == long_ago + sessions.LIFETIME


async def test_identity_systems_and_users_cannot_log_in(
    cert_app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    system = new_hsa_id()
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.register_client(tenant, "IdP med funktionscertifikat", hsa_id=system)
    person = new_hsa_id()
    await create_user(client, "gu@stockholm.se", **{ESERVICES: {"hsaId": person}})
    for hsa_id in (system, person):
        async with browser(cert_app, certificate=card(hsa_id)) as card_holder:
            response = await card_holder.post("/session")
        assert response.status_code == 403, (hsa_id, response.text)
        assert response.json()["message"] == NOT_ADMINISTRATOR
        assert "set-cookie" not in response.headers


async def test_no_valid_card_is_401_in_swedish(cert_app: Litestar, administrator: str) -> None:
    cases: list[tuple[Issued | None, tuple[str, int], str]] = [
        (None, PROXY, NO_CARD),
        (card(administrator, expired=True), PROXY, NO_CARD),
        (Authority("Someone Else's CA").issue("X", hsa_id=administrator), PROXY, NO_CARD),
        # Certificate headers from anyone but the trusted proxy are ignored.
        (card(administrator), ("10.9.9.9", 443), NO_CARD),
        (card(new_hsa_id()), PROXY, NOT_REGISTERED),
        (card(administrator, "Göteborgs stad"), PROXY, NOT_REGISTERED),
    ]
    for certificate, peer, message in cases:
        async with browser(cert_app, certificate=certificate, peer=peer) as anyone:
            response = await anyone.post("/session")
        assert response.status_code == 401, response.text
        body = response.json()
        assert body["schemas"] == [ERROR_SCHEMA]
        assert body["status"] == "401"
        assert body["detail"]
        assert body["message"] == message
        assert "set-cookie" not in response.headers
    assert "SITHS-kort" in NO_CARD


async def test_demo_login_is_404_outside_demo_mode(cert_app: Litestar, administrator: str) -> None:
    async with browser(cert_app, peer=LOOPBACK, origin="http://127.0.0.1:8000") as local:
        assert (await local.get("/session/demo")).status_code == 404
        response = await local.post("/session/demo", json={"hsaId": administrator})
    assert response.status_code == 404
    assert "set-cookie" not in response.headers


async def test_demo_mode_lets_a_local_newcomer_pick_an_administrator(
    demo_app: Litestar, engine: AsyncEngine, administrator: str, keeper: str
) -> None:
    async with browser(demo_app, peer=LOOPBACK, origin="http://127.0.0.1:8000") as local:
        listed = await local.get("/session/demo")
        assert listed.status_code == 200, listed.text
        by_hsa_id = {entry["hsaId"]: entry for entry in listed.json()}
        assert {administrator, keeper} <= set(by_hsa_id)
        assert by_hsa_id[administrator] == {
            "name": "Ada Admin",
            "hsaId": administrator,
            "organisation": {"name": STOCKHOLM, "kind": "kommun", "orgNumber": "2120000142"},
        }
        unknown = await local.post("/session/demo", json={"hsaId": "SE2120000142-NOONE"})
        assert unknown.status_code == 404
        assert "set-cookie" not in unknown.headers
        response = await local.post("/session/demo", json={"hsaId": administrator.lower()})
    assert response.status_code == 200, response.text
    session_id, attributes = session_cookie(response)
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert response.json()["hsaId"] == administrator
    records = await audit_records(engine, "session.login", administrator)
    assert records[-1].changes == {"method": "demo"}
    async with browser(demo_app, peer=LOOPBACK, session=session_id) as cookie:
        assert (await cookie.get("/scim/v2/Users")).status_code == 200
        assert (await cookie.get("/session")).json()["hsaId"] == administrator


async def test_demo_mode_answers_only_on_loopback(demo_app: Litestar, administrator: str) -> None:
    for peer, origin, headers in (
        (("192.168.1.20", 51000), "http://127.0.0.1:8000", {}),
        (("10.0.0.1", 51000), "http://demo.example", {}),
        # A page on another name that resolves to 127.0.0.1 (DNS rebinding).
        (LOOPBACK, "http://rebound.example:8000", {}),
        # A proxy on this machine, forwarding someone else.
        (LOOPBACK, "http://127.0.0.1:8000", {"X-Forwarded-For": "203.0.113.9"}),
        # The README's nginx block: the client's own Host, X-Forwarded-Proto, no client address.
        (LOOPBACK, "http://localhost:8000", {"X-Forwarded-Proto": "https"}),
        (LOOPBACK, "http://localhost:8000", {"X-SSL-Client-Cert": "-----BEGIN%20CERT"}),
        (LOOPBACK, "http://localhost:8000", {"Client-Cert": ":AAAA:"}),
        (LOOPBACK, "http://localhost:8000", {"X-Real-IP": "203.0.113.9"}),
        (LOOPBACK, "http://localhost:8000", {"Forwarded": "for=203.0.113.9"}),
        (LOOPBACK, "http://localhost:8000", {"Via": "1.1 proxy"}),
    ):
        async with browser(demo_app, peer=peer, origin=origin) as remote:
            listed = await remote.get("/session/demo", headers=headers)
            assert listed.status_code == 403, (peer, origin, listed.text)
            response = await remote.post(
                "/session/demo", json={"hsaId": administrator}, headers=headers
            )
            assert response.status_code == 403
            assert "set-cookie" not in response.headers
    async with browser(demo_app, peer=LOOPBACK, origin="http://localhost:8000") as local:
        assert (await local.get("/session/demo")).status_code == 200


@pytest.fixture
async def demo_behind_a_proxy(database_url: str, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    """Demo mode with a proxy on this machine trusted (as behind the README's nginx)."""
    settings = Settings(database_url=database_url, demo=True, trusted_proxies=("127.0.0.1",))
    app = create_app(settings)
    yield app
    await app.state.engine.dispose()


async def test_demo_mode_refuses_a_trusted_proxy_even_without_forwarding_headers(
    demo_behind_a_proxy: Litestar, administrator: str
) -> None:
    async with browser(
        demo_behind_a_proxy, peer=LOOPBACK, origin="http://localhost:8000"
    ) as proxied:
        assert (await proxied.get("/session/demo")).status_code == 403
        response = await proxied.post("/session/demo", json={"hsaId": administrator})
        assert response.status_code == 403 and "set-cookie" not in response.headers


def test_serve_demo_turns_demo_mode_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def run(app: Any, *args: Any, **kwargs: Any) -> None:
        seen["demo"] = app.state.settings.demo
        seen["factory"] = kwargs.get("factory")
        seen["environment"] = os.environ.get("SCIM_DEMO")

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("SCIM_DEMO", "0")
    with fresh_database() as url:
        assert cli.main(["serve", "--database", url, "--migrate"]) == 0
        assert seen == {"demo": False, "factory": False, "environment": "0"}
        assert cli.main(["serve", "--database", url, "--demo"]) == 0
        # The app is given its settings; the environment is left as it was.
        assert seen == {"demo": True, "factory": False, "environment": "0"}
    # A newcomer can try the client and the API at once.
    printed = capsys.readouterr().out
    assert "Browser client (pick a demo administrator): http://127.0.0.1:8000/admin/" in printed
    token = re.search(r"Bearer (scim_\S+)", printed)
    assert token is not None and "Bearer token for the demo identity system" in printed


def test_demo_mode_from_the_environment_is_refused_off_loopback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scim.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"SCIM_DEMO": "1", "SCIM_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "PATH": ""},
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


# -- Historik: a resource's audit records, for its organisation's administrators ------------


async def test_an_administrator_reads_who_changed_a_user_and_no_one_else_does(
    cert_app: Litestar, administrator: str, organisations: Organisations, clean: None
) -> None:
    async with api_client(cert_app, organisations.stockholm.token) as system:
        user = await create_user(system, "historik@stockholm.se")
        patch = {"op": "replace", "path": "displayName", "value": "Ny"}
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [patch]}
        assert (await system.patch(f"/Users/{user['id']}", json=body)).status_code == 200
        # The identity system keeps its own log: the history is the administrators'.
        history = f"http://scim.test/history/Users/{user['id']}"
        assert (await system.get(history)).status_code == 403
    with captured(cert_app.state.engine) as seen:
        async with browser(cert_app, certificate=card(administrator)) as admin:
            response = await admin.get(f"/history/Users/{user['id']}")
    assert any("audit_log" in statement for statement in seen)
    assert not any(statement.startswith("BEGIN") for statement in seen)  # a read: no lock
    assert response.status_code == 200, response.text
    records = response.json()["Resources"]
    assert [r["action"] for r in records] == ["User.patch", "User.create"]
    assert records[0]["changes"]["Operations"] == [patch]
    # Who: the identity system by the name the operator registered it under.
    assert {r["who"] for r in records} == {DEFAULT_CLIENT}
    assert all(r["actor"].startswith("client:") for r in records)
    assert records[0]["at"] >= records[1]["at"]
    async with api_client(cert_app, organisations.goteborg.token) as goteborg:
        assert (await goteborg.get(history)).status_code == 403
    # Another organisation's administrator finds nothing of it.
    async with api_client(cert_app, organisations.goteborg.token) as goteborg:
        other = await create_user(goteborg, "annan@goteborg.se")
    async with browser(cert_app, certificate=card(administrator)) as admin:
        response = await admin.get(f"/history/Users/{other['id']}")
        assert response.status_code == 200 and response.json()["Resources"] == []
        assert (await admin.get(f"/history/Nothing/{other['id']}")).status_code == 404
