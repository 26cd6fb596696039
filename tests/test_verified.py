"""Verified credentials kept in memory (``scim.auth.verified``): an authenticated read costs
one statement, and a change of who may call holds from the very next request, in every
worker, however many requests are in flight while it is made."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.auth import verified
from scim.operator import operating
from scim.settings import Settings
from scim.storage import listening
from tests.conftest import (
    ESERVICES,
    SCIM,
    STATLIG,
    Organisations,
    captured,
    new_hsa_id,
    user_body,
)
from tests.live import free_port, serving

GRANT = f"{STATLIG}:asylsokande-i-forskola"
POSTGRES = make_url(os.environ.get("SCIM_TEST_DATABASE_URL", "sqlite://")).get_backend_name() == (
    "postgresql"
)
CLI = (sys.executable, "-m", "scim.cli")
postgres_only = pytest.mark.skipif(not POSTGRES, reason="LISTEN/NOTIFY is PostgreSQL's")


async def new_token(engine: AsyncEngine, org_number: str) -> tuple[str, str]:
    async with operating(engine, "tests") as operator:
        tenant = await operator.tenant(org_number)
        return await operator.issue_token(tenant)


async def revoke(engine: AsyncEngine, org_number: str, token_id: str) -> int:
    """Revoke as the CLI does; how many workers did not confirm."""
    async with operating(engine, "tests") as operator:
        await operator.revoke_token(await operator.tenant(org_number), token_id)
    return operator.unconfirmed


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/scim/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
        timeout=30,
    )


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Any, str]]:
    """The app served with its lifespan (which watches for changes), and its URL."""
    app = create_app(settings)
    with serving(app, lifespan="on") as url:
        deadline = time.monotonic() + 10
        while POSTGRES and not app.state.authenticator.verified.listener.up:
            assert time.monotonic() < deadline, "the listener did not connect"
            time.sleep(0.05)
        yield app, url


async def test_a_kept_credential_costs_no_statement_of_its_own(
    served: tuple[Any, str], engine: AsyncEngine, clean: None, organisations: Organisations
) -> None:
    app, url = served
    _, token = await new_token(engine, organisations.stockholm.org_number)
    with client(url, token) as scim:
        created = scim.post("/Users", json=user_body("kept@example.se"))
        assert created.status_code == 201, created.text
        path = f"/Users/{created.json()['id']}"
        with captured(app.state.engine) as captured_statements:
            assert scim.get(path).status_code == 200
        # The rate limiter's sync runs beside requests, five times a second: not the GET's.
        statements = [s for s in captured_statements if "rate_counts" not in s]
        assert len(statements) == 1, statements  # the read; the token was kept
        assert "tokens" not in statements[0]


async def test_a_revoked_token_is_refused_on_the_next_request(
    served: tuple[Any, str], engine: AsyncEngine, clean: None, organisations: Organisations
) -> None:
    _, url = served
    org = organisations.stockholm.org_number
    token_id, token = await new_token(engine, org)
    _, other = await new_token(engine, org)
    with client(url, token) as scim, client(url, other) as untouched:
        for _ in range(3):
            assert scim.get("/Users").status_code == 200
            assert untouched.get("/Users").status_code == 200
        assert await revoke(engine, org, token_id) == 0
        refused = scim.get("/Users")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
        # The organisation's other token was forgotten too, and read again: still valid.
        assert untouched.get("/Users").status_code == 200


async def test_ended_agreements_hold_on_the_next_request(
    served: tuple[Any, str], engine: AsyncEngine, clean: None, organisations: Organisations
) -> None:
    """The organisation's agreements are part of what is kept: a permission of an
    e-service whose agreement has ended cannot be granted from the next request on."""
    _, url = served
    org = organisations.goteborg.org_number
    _, token = await new_token(engine, org)

    def with_grant(name: str) -> dict[str, Any]:
        extension = {"hsaId": new_hsa_id(org), "permissions": [{"value": GRANT}]}
        return user_body(name, **{ESERVICES: extension})

    try:
        with client(url, token) as scim:
            assert scim.post("/Users", json=with_grant("fore@goteborg.se")).status_code == 201
            async with operating(engine, "tests") as operator:
                await operator.set_agreements(await operator.tenant(org), [])
            assert operator.unconfirmed == 0
            refused = scim.post("/Users", json=with_grant("efter@goteborg.se"))
            assert refused.status_code == 400, refused.text
    finally:
        async with operating(engine, "tests") as operator:
            await operator.set_agreements(await operator.tenant(org), [STATLIG])


@postgres_only
async def test_a_worker_whose_listener_is_lost_asks_the_database(
    served: tuple[Any, str], engine: AsyncEngine, clean: None, organisations: Organisations
) -> None:
    app, url = served
    listener = app.state.authenticator.verified.listener
    org = organisations.stockholm.org_number
    token_id, token = await new_token(engine, org)
    with client(url, token) as scim:
        assert scim.get("/Users").status_code == 200
        async with engine.connect() as connection:
            await connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE application_name = '{listening.APPLICATION_NAME}'"
                " AND datname = current_database()"
            )
        deadline = time.monotonic() + 5
        while listener.up:
            assert time.monotonic() < deadline, "the lost listener went unnoticed"
            time.sleep(0.01)
        with captured(app.state.engine) as statements:
            assert scim.get("/Users?count=0").status_code == 200
        assert any("token_hash" in statement for statement in statements), statements
        # Nobody is listening, so nobody is waited for; the next request is refused all the
        # same, from the database.
        started = time.monotonic()
        assert await revoke(engine, org, token_id) == 0
        assert time.monotonic() - started < verified.CONFIRM_WAIT
        assert scim.get("/Users").status_code == 401


@postgres_only
async def test_a_worker_that_does_not_answer_is_reported(
    database_url: str, engine: AsyncEngine, organisations: Organisations, monkeypatch: Any
) -> None:
    """A listener that never answers (a worker stuck in a long computation, say) is waited
    for ``CONFIRM_WAIT`` seconds and then counted."""
    monkeypatch.setattr(verified, "CONFIRM_WAIT", 0.5)
    url = make_url(database_url)
    mute = await asyncpg.connect(
        listening.dsn(engine), server_settings={"application_name": listening.APPLICATION_NAME}
    )
    try:
        await mute.execute(f"LISTEN {verified.CHANNEL}")
        token_id, _ = await new_token(engine, organisations.stockholm.org_number)
        assert url.database
        assert await revoke(engine, organisations.stockholm.org_number, token_id) == 1
    finally:
        await mute.close()


async def test_every_worker_refuses_a_revoked_token_once_the_command_returns(
    database_url: str, engine: AsyncEngine, organisations: Organisations
) -> None:
    """`scim serve --workers 2` under a steady load of the token, and `scim token revoke`:
    every request sent after the command returned is refused, by whichever worker."""
    org = organisations.stockholm.org_number
    token_id, token = await new_token(engine, org)
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", "--database", database_url, "--port", str(port), "--workers", "2"],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(_wait_ready, url, server)
        answers: list[tuple[float, float, int]] = []  # sent, answered, status
        stop = threading.Event()

        def load() -> None:
            # A new connection each time, so that both workers serve the token.
            while not stop.is_set():
                sent = time.monotonic()
                with client(url, token) as scim:
                    status = scim.get("/Users?count=0").status_code
                answers.append((sent, time.monotonic(), status))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        await asyncio.sleep(1.5)
        started = time.monotonic()
        revoke = [*CLI, "token", "revoke", "--database", database_url]
        revoked = await asyncio.to_thread(
            subprocess.run,
            [*revoke, "--tenant", org, "--id", token_id],
            capture_output=True,
            text=True,
            check=False,
        )
        returned = time.monotonic()
        await asyncio.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert revoked.returncode == 0, revoked.stderr
        assert "did not confirm" not in revoked.stderr
        before = [status for _, answered, status in answers if answered < started]
        after = [status for sent, _, status in answers if sent > returned]
        assert before and set(before) == {200}
        assert len(after) > 20 and set(after) == {401}, sorted(set(after))
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server stopped"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                # Both workers' listeners connect shortly after they serve.
                time.sleep(1)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not start")
