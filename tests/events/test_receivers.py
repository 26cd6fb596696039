"""Receivers as the operator registers them, keys as they rotate, workers as they share the
delivery, and writes that are refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import KeySet
from litestar import Litestar
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from extensions import EServices
from scim.events.delivery import EVENT_URIS, Transmitter
from scim.events.receivers import push_url_problem
from scim.events.signing import new_key
from scim.settings import Settings
from scim.storage import events as stored
from scim.storage.repository import Repository
from scim.storage.tables import receivers, security_events
from tests.conftest import (
    ADMIN_HSA,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    STATLIG,
    Organisations,
    api_client,
    captured,
    fresh_database,
    patch_body,
    user_body,
)
from tests.events.conftest import (
    GRANT,
    event_of,
    push_receiver,
    register,
    scim_client,
    with_permission,
)
from tests.events.receiver import Receiver
from tests.live import free_port, live_server, serving


@pytest.mark.parametrize(
    "url",
    [
        "https://tjanst.example.se/scim-events",
        "https://10.1.2.3:8443/events",
        "http://127.0.0.1:8081/events",
        "http://[::1]/events",
        "http://localhost:9000/e",
    ],
)
def test_push_urls_that_are_taken(url: str) -> None:
    assert push_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://tjanst.example.se/events",  # plain HTTP off this host
        "http://10.0.0.1/events",
        "http://127.0.0.1.nip.io/events",  # a name, not the loopback address
        "ftp://127.0.0.1/x",
        "https://user:secret@tjanst.example.se/",
        "https:///no-host",
        "https://tjanst.example.se:99999/",
        "/relative",
        "https://tjanst.example.se/#fragment",
    ],
)
def test_push_urls_that_are_refused(url: str) -> None:
    assert push_url_problem(url) is not None


def test_the_receiver_commands_keep_their_forms() -> None:
    with fresh_database() as url:

        def scim(*arguments: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "scim.cli", *arguments, "--database", url],
                capture_output=True,
                text=True,
                check=False,
                env={"PATH": "", "SCIM_PUBLIC_URL": "https://behorigheter.example.se"},
            )

        assert scim("db", "upgrade").returncode == 0
        added = scim(
            "tenant", "add", "--org-number", "2120000142", "--name", "S", "--kind", "kommun"
        )
        assert added.returncode == 0, added.stderr
        push = scim("receiver", "add", "--service", STATLIG, "--push-url", "https://e.example.se/s")
        assert push.returncode == 0, push.stderr
        receiver_id, jwks = push.stdout.splitlines()[-1].split(" ")
        assert jwks == "https://behorigheter.example.se/events/jwks.json"
        polled = scim("receiver", "add", "--service", STATLIG, "--poll", "--tenant", "2120000142")
        assert polled.returncode == 0, polled.stderr
        poll_id = polled.stdout.splitlines()[-1].split(" ")[0]
        assert "scim_" in polled.stdout  # its token, once
        listed = scim("receiver", "list").stdout
        assert receiver_id in listed and poll_id in listed and "2120000142" in listed
        status = scim("receiver", "status").stdout
        assert f"{receiver_id}  {STATLIG}  all  pending=0  lag=0s  dead=0" in status
        assert scim("receiver", "remove", receiver_id).returncode == 0
        assert receiver_id not in scim("receiver", "list").stdout
        assert scim("receiver", "remove", receiver_id).returncode == 2
        for refused in (
            ["--service", "no-such-service", "--poll"],
            ["--service", STATLIG, "--push-url", "http://e.example.se/s"],
            ["--service", STATLIG, "--poll", "--push-url", "https://e.example.se/s"],
            ["--service", STATLIG],
        ):
            answer = scim("receiver", "add", *refused)
            assert answer.returncode == 2, refused


async def test_service_provider_config_tells_of_security_events_once_there_is_a_receiver(
    app: Litestar, engine: AsyncEngine, no_receivers: None
) -> None:
    async with api_client(app, None) as client:
        before = (await client.get("/ServiceProviderConfig")).json()
        assert "securityEvents" not in before
        await register(engine, STATLIG, None)
        after = (await client.get("/ServiceProviderConfig")).json()
    assert after["securityEvents"] == {
        "asyncRequest": "none",
        "eventUris": list(EVENT_URIS.values()),
    }


async def test_a_rotated_key_signs_what_was_still_pending_and_both_are_published(
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
    tmp_path: Path,
) -> None:
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    old.write_bytes(new_key().as_pem(private=True))
    new.write_bytes(new_key().as_pem(private=True))
    port = free_port()
    public = replace(settings, public_url=f"http://127.0.0.1:{port}")
    receiver = push_receiver(public.public_url)
    up = {"on": True}
    receiver.answer = lambda claims: None if up["on"] else (503, {})
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        old_only = replace(public, event_keys=(str(old),))
        with (
            live_server(old_only, port=port) as server,
            scim_client(server, organisations.stockholm.token) as client,
        ):
            client.post("/Users", json=with_permission("before", GRANT))
            (signed_old,) = receiver.wait_for(1)
            up["on"] = False
            client.post("/Users", json=with_permission("pending", GRANT))
        up["on"] = True
        with live_server(replace(public, event_keys=(str(new), str(old))), port=port) as server:
            _, signed_new = receiver.wait_for(2)
            published = httpx.get(f"{server}/events/jwks.json").json()["keys"]
    headers = [_kid(signed_old.token), _kid(signed_new.token)]
    assert headers[0] != headers[1]
    assert [key["kid"] for key in published] == [headers[1], headers[0]]
    assert all(
        key["alg"] == "ES256" and key["use"] == "sig" and "d" not in key for key in published
    )
    assert receiver.refused == []


def _kid(token: str) -> str:
    from joserfc import jws

    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


async def test_a_worker_that_stops_hands_back_its_lease(
    app: Litestar,
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
) -> None:
    """A worker stopped while it held a receiver's lease (its release cut short by the stop)
    leaves the receiver to another worker at once, not after the lease's minute: what a
    restart's first delivery waits for."""
    await register(engine, STATLIG, "http://127.0.0.1:9/e")
    async with api_client(app, organisations.stockholm.token) as client:
        created = await client.post("/Users", json=with_permission("lease", GRANT))
        assert created.status_code == 201
    stopping = await worker_for(engine, settings)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        leased = await stored.lease(connection, stopping.owner, now, now + timedelta(minutes=1))
    assert leased is not None
    await stopping.close()
    async with engine.begin() as connection:
        taken = await stored.lease(connection, "another", now, now + timedelta(minutes=1))
    assert taken is not None and taken.id == leased.id


async def worker_for(
    engine: AsyncEngine, settings: Settings, receiver: Receiver | None = None
) -> Transmitter:
    """A delivering worker in this process; ``receiver`` is given its keys (the JWKS a
    server would publish: none runs here)."""
    worker = Transmitter(engine, settings, EServices.from_settings(settings))
    if receiver is not None:
        receiver.keys["current"] = KeySet.import_key_set((await worker.signer()).jwks())
    return worker


async def test_workers_share_the_delivery_without_duplicates_and_in_order(
    app: Litestar,
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
) -> None:
    receiver = push_receiver("http://127.0.0.1:8000")
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        async with api_client(app, organisations.stockholm.token) as client:
            created = await client.post("/Users", json=with_permission("shared", GRANT))
            user_id = created.json()["id"]
            for index in range(40):
                change = {"op": "replace", "path": "active", "value": index % 2 == 1}
                answer = await client.patch(f"/Users/{user_id}", json=patch_body(change))
                assert answer.status_code == 200
        workers = [await worker_for(engine, settings, receiver) for _ in range(3)]

        async def drain(worker: Transmitter) -> None:
            while await worker.push_once():
                pass

        try:
            await asyncio.gather(*(drain(worker) for worker in workers))
        finally:
            for worker in workers:
                await worker.close()
        received = receiver.wait_for(41)
    assert len({r.claims["jti"] for r in received}) == 41
    kinds = [event_of(r.claims)[0] for r in received]
    assert kinds == ["create:notice"] + ["deactivate", "activate"] * 20


async def test_a_refused_write_tells_nothing(
    app: Litestar,
    engine: AsyncEngine,
    organisations: Organisations,
    administrator: str,
    no_receivers: None,
) -> None:
    await register(engine, STATLIG, None)

    async def events() -> int:
        async with engine.connect() as connection:
            return int(
                (
                    await connection.execute(select(func.count()).select_from(security_events))
                ).scalar_one()
            )

    async with api_client(app, organisations.stockholm.token) as client:
        user = (await client.post("/Users", json=with_permission("refused", GRANT))).json()
        told = await events()
        # Becoming the administrator: written, then found to conflict, and rolled back.
        change = {"op": "replace", "path": f"{ESERVICES}:hsaId", "value": ADMIN_HSA}
        clash = await client.patch(f"/Users/{user['id']}", json=patch_body(change))
        assert clash.status_code == 409
        # Granting what the organisation has no agreement for.
        grant = {
            "op": "add",
            "path": f"{ESERVICES}:permissions",
            "value": [{"value": "e-tjanst-for-landsting:se-asylsokande"}],
        }
        assert (
            await client.patch(f"/Users/{user['id']}", json=patch_body(grant))
        ).status_code == 400
    assert await events() == told


def test_the_domain_names_the_audiences_receivers_may_hear(settings: Settings) -> None:
    domain = EServices.from_settings(settings)
    assert domain.audience(f" {STATLIG} ") == STATLIG
    with pytest.raises(ValueError, match="no e-service"):
        domain.audience("okand-tjanst")


async def test_a_permission_retired_in_the_catalogue_is_told_to_those_it_is_taken_from(
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
    tmp_path: Path,
) -> None:
    shipped = Path(__file__).parents[2] / "extensions" / "catalogue.toml"
    retired = tmp_path / "catalogue.toml"
    permission_id = GRANT.split(":")[1]
    retired.write_text(
        shipped.read_text().replace(
            f'id = "{permission_id}"\n', f'id = "{permission_id}"\nretired = true\n'
        )
    )
    port = free_port()
    public = replace(settings, public_url=f"http://127.0.0.1:{port}")
    receiver = push_receiver(public.public_url)
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with (
            live_server(public, port=port) as server,
            scim_client(server, organisations.stockholm.token) as client,
        ):
            direct = client.post("/Users", json=with_permission("direct", GRANT)).json()
            member = client.post("/Users", json=with_permission("member")).json()
            group = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Förskola",
                "members": [{"value": member["id"]}],
                ESERVICES_GROUP: {"permissions": [{"value": GRANT}]},
            }
            assert client.post("/Groups", json=group).status_code == 201
            receiver.wait_for(2)
        # The agency retires the permission and restarts: each holder is told, once.
        for _ in range(2):
            with live_server(replace(public, catalogue=str(retired)), port=port):
                told = receiver.wait_for(4)[2:]
        assert sorted(r.claims["sub_id"]["id"] for r in told) == sorted(
            [direct["id"], member["id"]]
        )
        assert {event_of(r.claims)[0] for r in told} == {"patch:notice"}
        # Back in the catalogue: told again.
        with live_server(public, port=port):
            receiver.wait_for(6)
    assert len(receiver.received) == 6


async def test_a_lease_the_worker_could_not_give_back_is_its_own_to_take_up_again(
    app: Litestar,
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
) -> None:
    receiver = push_receiver("http://127.0.0.1:8000")
    with serving(receiver) as url:
        receiver_id, _ = await register(engine, STATLIG, f"{url}/e")
        async with api_client(app, organisations.stockholm.token) as client:
            await client.post("/Users", json=with_permission("lease", GRANT))
        worker = await worker_for(engine, settings, receiver)
        other = await worker_for(engine, settings, receiver)
        # The database went away while ``worker`` held the lease: its release never arrived.
        async with engine.begin() as connection:
            await connection.execute(
                update(receivers)
                .where(receivers.c.id == receiver_id)
                .values(
                    lease_owner=worker.owner, lease_until=datetime.now(UTC) + timedelta(minutes=1)
                )
            )
        try:
            assert not await other.push_once()  # another worker waits for the lease to run out
            assert await worker.push_once()  # its holder goes on at once
        finally:
            await worker.close()
            await other.close()
        assert len(receiver.wait_for(1)) == 1


async def test_an_idle_worker_looks_without_beginning_a_write(
    engine: AsyncEngine, settings: Settings, no_receivers: None
) -> None:
    """Every half second each worker looks for receivers due; with none, it reads only (on
    SQLite a write would take the database's one lock from the requests)."""
    await register(engine, STATLIG, "http://127.0.0.1:9/e")  # nothing pending for it
    worker = await worker_for(engine, settings)
    try:
        with captured(engine) as seen:
            assert not await worker.push_once()
    finally:
        await worker.close()
    assert any("receivers" in statement for statement in seen)
    assert not any(statement.startswith(("BEGIN", "UPDATE")) for statement in seen)


async def test_a_change_nobody_hears_reads_no_view_and_tells_nothing(
    app: Litestar,
    engine: AsyncEngine,
    organisations: Organisations,
    no_receivers: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users' views before and after a change are read only when some receiver hears the
    organisation (``Outbox.hears``): adding a member to a group that grants a permission
    reads none while nobody listens, nor while only another organisation's receiver does,
    and reads them, and tells, once a receiver of every organisation listens."""
    read: list[str] = []
    users_related = Repository.users_related

    async def counted(self: Repository, user_ids: Any, fields: Any) -> Any:
        read.extend(user_ids)
        return await users_related(self, user_ids, fields)

    monkeypatch.setattr(Repository, "users_related", counted)

    async def events() -> int:
        async with engine.connect() as connection:
            count = select(func.count()).select_from(security_events)
            return int((await connection.execute(count)).scalar_one())

    async with api_client(app, organisations.stockholm.token) as client:
        users = [(await client.post("/Users", json=user_body(f"n{i}"))).json() for i in range(3)]
        group = await client.post(
            "/Groups",
            json={
                "schemas": [GROUP_SCHEMA],
                "displayName": "Handläggare",
                ESERVICES_GROUP: {"permissions": [{"value": GRANT}]},
            },
        )
        assert group.status_code == 201, group.text

        async def join(user: dict[str, Any]) -> None:
            add = {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
            response = await client.patch(f"/Groups/{group.json()['id']}", json=patch_body(add))
            assert response.status_code == 204, response.text

        await join(users[0])
        assert read == [] and await events() == 0
        await register(engine, STATLIG, None, organisations.goteborg.org_number)
        await join(users[1])
        assert read == [] and await events() == 0
        await register(engine, STATLIG, None)
        await join(users[2])
    assert read == [users[2]["id"], users[2]["id"]]  # before and after
    assert await events() == 1
