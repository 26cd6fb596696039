"""Poll receivers (RFC 8936): authenticated, acknowledged, re-delivered, long-polled."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.events import delivery
from scim.operator import Operator
from tests.conftest import STATLIG, Organisations
from tests.events.conftest import GRANT, event_of, register, scim_client, with_permission
from tests.events.receiver import verify


def poll(server: str, token: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server}/events/poll", json=body, headers=headers, timeout=30)


async def test_a_poll_receiver_fetches_verifies_and_acknowledges(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    _, token = await register(engine, STATLIG, None)
    with scim_client(server, organisations.stockholm.token) as client:
        users = [
            client.post("/Users", json=with_permission(f"p{i}", GRANT)).json() for i in range(3)
        ]
    first = poll(server, token, {"maxEvents": 2, "returnImmediately": True})
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    body = first.json()
    assert len(body["sets"]) == 2 and body["moreAvailable"] is True
    keys: dict[str, Any] = {}
    for jti, token_text in body["sets"].items():
        claims = verify(token_text, f"{server}/events/jwks.json", keys)
        assert claims["jti"] == jti and claims["aud"] == STATLIG
        assert event_of(claims)[0] == "create:notice"
    # Acknowledged ones are done; the third comes next.
    second = poll(server, token, {"ack": list(body["sets"]), "returnImmediately": True}).json()
    assert len(second["sets"]) == 1 and second["moreAvailable"] is False
    (third,) = second["sets"].values()
    claims = verify(third, f"{server}/events/jwks.json", keys)
    assert claims["sub_id"]["id"] == users[2]["id"]
    assert poll(server, token, {"ack": list(second["sets"]), "returnImmediately": True}).json() == {
        "sets": {},
        "moreAvailable": False,
    }


async def test_an_unacknowledged_set_is_handed_out_again_with_its_jti(
    engine: AsyncEngine,
    server: str,
    organisations: Organisations,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, token = await register(engine, STATLIG, None)
    with scim_client(server, organisations.stockholm.token) as client:
        client.post("/Users", json=with_permission("again", GRANT))
    handed = poll(server, token, {"returnImmediately": True}).json()["sets"]
    assert len(handed) == 1
    # Not again at once (another poll in flight must not get it too) ...
    assert poll(server, token, {"returnImmediately": True}).json()["sets"] == {}
    # ... but once the re-delivery interval has passed.
    monkeypatch.setattr(delivery, "REDELIVER_AFTER", delivery.timedelta(0))
    assert list(poll(server, token, {"returnImmediately": True}).json()["sets"]) == list(handed)


async def test_a_set_the_receiver_reports_an_error_for_is_dead(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    _, token = await register(engine, STATLIG, None)
    with scim_client(server, organisations.stockholm.token) as client:
        client.post("/Users", json=with_permission("err", GRANT))
    (jti,) = poll(server, token, {"returnImmediately": True}).json()["sets"]
    errors = {jti: {"err": "invalid_key", "description": "unknown kid"}}
    answer = poll(server, token, {"setErrs": errors, "returnImmediately": True})
    assert answer.json() == {"sets": {}, "moreAvailable": False}
    async with engine.connect() as connection:
        (state,) = await Operator(connection, "tests").receivers()
    assert (state.pending, state.dead) == (0, 1)


async def test_a_long_poll_returns_as_soon_as_an_event_is_committed(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    _, token = await register(engine, STATLIG, None)

    def change() -> None:
        time.sleep(0.5)
        with scim_client(server, organisations.stockholm.token) as client:
            client.post("/Users", json=with_permission("long", GRANT))

    started = time.monotonic()
    waiting = asyncio.create_task(asyncio.to_thread(poll, server, token, {}))
    await asyncio.to_thread(change)
    answer = await waiting
    assert len(answer.json()["sets"]) == 1
    # It waited for the event (not the 30 s timeout), then returned.
    assert 0.4 < time.monotonic() - started < 20


async def test_polling_needs_the_receivers_own_token(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    _, token = await register(engine, STATLIG, None)
    push_id, _ = await register(engine, STATLIG, "http://127.0.0.1:9/e")
    for credential in (None, "scim_not-a-token", organisations.stockholm.token):
        answer = poll(server, credential, {"returnImmediately": True})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["err"] == "authentication_failed"
    # Another receiver's jti is not this one's to acknowledge.
    assert (
        poll(server, token, {"ack": [f"1-{push_id}"], "returnImmediately": True}).status_code == 200
    )
    for wrong in ({"maxEvents": -1}, {"maxEvents": 10**6}, {"ack": "x"}, {"returnImmediately": 3}):
        answer = poll(server, token, {"returnImmediately": True, **wrong})
        assert answer.status_code == 400, wrong
        assert answer.json()["err"] == "invalid_request"
