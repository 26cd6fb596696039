"""Permission changes reach an e-service's push receiver as signed SETs (RFC 9967, RFC 8935),
from a real server to a real HTTP receiver that verifies each against the published JWKS."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.events import delivery
from scim.operator import Operator
from scim.settings import Settings
from tests.conftest import (
    ENSAMKOMMANDE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    LANDSTING,
    STATLIG,
    Organisations,
    patch_body,
    user_body,
)
from tests.events.conftest import (
    GRANT,
    agreements_for_a_while,
    event_of,
    push_receiver,
    register,
    scim_client,
    with_permission,
)
from tests.live import free_port, live_server, serving
from tests.pki import Authority


async def test_a_revoked_permission_reaches_the_receiver_signed_and_told_once(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    with serving(receiver) as receiver_url:
        receiver_id, _ = await register(engine, STATLIG, f"{receiver_url}/events")
        with scim_client(server, organisations.stockholm.token) as client:
            created = client.post("/Users", json=with_permission("anna", GRANT)).json()
            hsa_id = created[ESERVICES]["hsaId"]
            revoked = client.patch(
                f"/Users/{created['id']}",
                json=patch_body({"op": "remove", "path": f"{ESERVICES}:permissions"}),
            )
            assert revoked.status_code == 200, revoked.text
            # A change of nothing the e-service depends on is not told.
            renamed = client.patch(
                f"/Users/{created['id']}",
                json=patch_body({"op": "replace", "path": "displayName", "value": "Anna A"}),
            )
            assert renamed.status_code == 200
        first, second = receiver.wait_for(2)
    assert [event_of(r.claims)[0] for r in (first, second)] == ["create:notice", "patch:notice"]
    claims = second.claims
    assert claims["iss"] == f"{server}/scim/v2"
    assert claims["aud"] == STATLIG
    assert claims["tenant"] == organisations.stockholm.org_number
    assert claims["sub_id"] == {
        "format": "scim",
        "uri": f"/Users/{created['id']}",
        "id": created["id"],
        "hsaId": hsa_id,
    }
    assert "sub" not in claims and "exp" not in claims
    _, payload = event_of(claims)
    assert f"{ESERVICES}:permissions" in payload["attributes"]
    assert f"{ESERVICES}:effectivePermissions" in payload["attributes"]
    assert first.claims["jti"] != second.claims["jti"]
    assert first.claims["txn"] != second.claims["txn"]
    assert receiver.refused == []
    assert receiver_id in second.claims["jti"]


async def test_a_receiver_hears_its_e_service_of_its_organisation_and_nothing_else(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    stockholm_statlig = push_receiver(server)
    region_landsting = push_receiver(server, LANDSTING)
    with serving(stockholm_statlig) as first, serving(region_landsting) as second:
        await register(engine, STATLIG, f"{first}/e", organisations.stockholm.org_number)
        await register(engine, LANDSTING, f"{second}/e")
        with scim_client(server, organisations.goteborg.token) as goteborg:
            # Göteborg has an agreement for the same e-service: not this receiver's organisation.
            answer = goteborg.post("/Users", json=with_permission("g", GRANT))
            assert answer.status_code == 201
        with scim_client(server, organisations.stockholm.token) as stockholm:
            other = f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare"
            assert stockholm.post("/Users", json=with_permission("o", other)).status_code == 201
            mine = stockholm.post("/Users", json=with_permission("s", GRANT)).json()
        (only,) = stockholm_statlig.wait_for(1)
        assert only.claims["sub_id"]["id"] == mine["id"]
        with scim_client(server, organisations.region.token) as region:
            granted = region.post(
                "/Users", json=with_permission("r", f"{LANDSTING}:se-asylsokande")
            ).json()
        (heard,) = region_landsting.wait_for(1)
        assert heard.claims["sub_id"]["id"] == granted["id"]
        assert heard.claims["tenant"] == organisations.region.org_number
    assert len(stockholm_statlig.received) == 1


async def test_group_permissions_and_membership_are_told_to_each_member_they_change(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            holds = client.post("/Users", json=with_permission("holds", GRANT)).json()
            plain = [client.post("/Users", json=user_body(f"u{i}")).json() for i in range(2)]
            assert len(receiver.wait_for(1)) == 1  # the one created with a permission
            group = client.post(
                "/Groups",
                json={
                    "schemas": [GROUP_SCHEMA],
                    "displayName": "Handläggare",
                    "members": [{"value": plain[0]["id"]}, {"value": holds["id"]}],
                    ESERVICES_GROUP: {"permissions": [{"value": GRANT}]},
                },
            ).json()
            # plain[0] gains the permission; ``holds`` had it already: nothing to tell.
            joined = receiver.wait_for(2)[1]
            assert joined.claims["sub_id"]["id"] == plain[0]["id"]
            assert event_of(joined.claims)[1]["attributes"] == sorted(
                ["groups", "entitlements", f"{ESERVICES}:effectivePermissions"]
            )
            add = {"op": "add", "path": "members", "value": [{"value": plain[1]["id"]}]}
            assert client.patch(f"/Groups/{group['id']}", json=patch_body(add)).status_code in (
                200,
                204,
            )
            assert receiver.wait_for(3)[2].claims["sub_id"]["id"] == plain[1]["id"]
            # The group stops giving it: both members who had it only through the group.
            drop = {"op": "remove", "path": f"{ESERVICES_GROUP}:permissions"}
            assert client.patch(f"/Groups/{group['id']}", json=patch_body(drop)).status_code in (
                200,
                204,
            )
            told = receiver.wait_for(5)[3:]
            assert sorted(r.claims["sub_id"]["id"] for r in told) == sorted(u["id"] for u in plain)
            assert len({r.claims["txn"] for r in told}) == 1  # one change, one transaction
            # A group that gives nothing: deleting it tells nothing.
            assert client.delete(f"/Groups/{group['id']}").status_code == 204
            assert client.delete(f"/Users/{holds['id']}").status_code == 204
            (deleted,) = receiver.wait_for(6)[5:]
    assert event_of(deleted.claims) == ("delete", {})
    assert deleted.claims["sub_id"]["hsaId"] == holds[ESERVICES]["hsaId"]
    assert len(receiver.received) == 6


async def test_deactivation_and_reactivation_are_their_own_events(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            user = client.post("/Users", json=with_permission("act", GRANT)).json()
            for active in (False, True):
                change = {"op": "replace", "path": "active", "value": active}
                assert client.patch(f"/Users/{user['id']}", json=patch_body(change)).is_success
        received = receiver.wait_for(3)
        metrics = httpx.get(f"{server}/metrics").text
    assert [event_of(r.claims) for r in received[1:]] == [("deactivate", {}), ("activate", {})]
    for name in ("scim_events_delivered_total", "scim_event_delivery_seconds_bucket"):
        lines = [line for line in metrics.splitlines() if line.startswith(name + "{")]
        assert any('mode="push"' in line for line in lines), name


async def test_an_agreement_ending_is_told_for_every_user_it_takes_a_permission_from(
    engine: AsyncEngine, server: str, organisations: Organisations, settings: Settings
) -> None:
    receiver = push_receiver(server)
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            users = [
                client.post("/Users", json=with_permission(f"a{i}", GRANT)).json() for i in range(3)
            ]
        receiver.wait_for(3)
        org = organisations.stockholm.org_number
        async with agreements_for_a_while(engine, settings, org, [ENSAMKOMMANDE]):
            # Written by another process (the operator's command): found at the next look.
            told = receiver.wait_for(6)[3:]
    assert sorted(r.claims["sub_id"]["id"] for r in told) == sorted(u["id"] for u in users)
    assert all(event_of(r.claims)[0] == "patch:notice" for r in told)


async def test_a_receiver_down_gets_everything_in_order_once_it_is_back(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    down = {"on": True}
    receiver.answer = lambda claims: (503, {}) if down["on"] else None
    with serving(receiver) as url:
        receiver_id, _ = await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            user = client.post("/Users", json=with_permission("down", GRANT)).json()
            for value in (False, True, False):
                change = {"op": "replace", "path": "active", "value": value}
                assert client.patch(f"/Users/{user['id']}", json=patch_body(change)).is_success
        async with engine.begin() as connection:
            (state,) = await Operator(connection, "tests").receivers()
        assert state.id == receiver_id and state.pending == 4
        down["on"] = False
        received = receiver.wait_for(4)
    assert [event_of(r.claims)[0] for r in received] == [
        "create:notice",
        "deactivate",
        "activate",
        "deactivate",
    ]


async def test_an_event_the_receiver_refuses_is_dead_until_the_operator_replays_it(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    refusing = {"on": True}
    receiver.answer = lambda claims: (
        (400, {"err": "invalid_request", "description": "no"}) if refusing["on"] else None
    )
    with serving(receiver) as url:
        receiver_id, _ = await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            client.post("/Users", json=with_permission("dead", GRANT))
            later = client.post("/Users", json=with_permission("later", GRANT)).json()
        async with engine.connect() as connection:
            for _ in range(100):
                (state,) = await Operator(connection, "tests").receivers()
                if state.dead == 2:
                    break
                await connection.commit()
                await asyncio.sleep(0.1)
        assert (state.pending, state.dead) == (0, 2)
        refusing["on"] = False
        async with engine.begin() as connection:
            assert await Operator(connection, "tests").replay(receiver_id) == 2
        received = receiver.wait_for(2)
    assert received[1].claims["sub_id"]["id"] == later["id"]


async def test_a_bulk_tells_each_user_once_from_its_one_transaction(
    engine: AsyncEngine, server: str, organisations: Organisations
) -> None:
    receiver = push_receiver(server)
    count = 450  # more than one round of the Bulk's writes (scim.bulk._CHUNK)
    operations = [
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{i}",
            "data": with_permission(f"b{i}", GRANT),
        }
        for i in range(count)
    ]
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            answer = client.post(
                "/Bulk",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": operations,
                },
            )
        assert answer.status_code == 200
        created = {r["location"].rsplit("/", 1)[1] for r in answer.json()["Operations"]}
        received = receiver.wait_for(count)
    assert {r.claims["sub_id"]["id"] for r in received} == created
    assert len({r.claims["jti"] for r in received}) == count
    # Written together, committed together: one transaction, as the SETs' txn says.
    assert len({r.claims["txn"] for r in received}) == 1


async def test_an_operators_change_wakes_every_worker_through_postgresql(
    engine: AsyncEngine,
    server: str,
    organisations: Organisations,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's command is another process: only PostgreSQL's notification can tell
    the server at once (its own look is made an hour apart here)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serves one process")
    receiver = push_receiver(server)
    with serving(receiver) as url:
        await register(engine, STATLIG, f"{url}/e")
        with scim_client(server, organisations.stockholm.token) as client:
            client.post("/Users", json=with_permission("notified", GRANT))
        receiver.wait_for(1)
        monkeypatch.setattr(delivery, "POLL_INTERVAL", 3600.0)
        await asyncio.sleep(0.5)  # the worker is back to waiting, now for an hour
        org = organisations.stockholm.org_number
        async with agreements_for_a_while(engine, settings, org, [ENSAMKOMMANDE]):
            (told,) = receiver.wait_for(2)[1:]
    assert event_of(told.claims)[0] == "patch:notice"


async def test_pushes_over_https_trust_the_configured_ca_and_no_other(
    engine: AsyncEngine,
    settings: Settings,
    organisations: Organisations,
    no_receivers: None,
    tmp_path: Path,
) -> None:
    """A receiver whose certificate comes from the agency's own CA gets its SETs once
    ``SCIM_EVENT_CA_BUNDLE`` names that CA; without it the push fails TLS and waits."""
    authority = Authority("E-tjänsternas test-CA")
    leaf = authority.issue("mottagare", client_auth=False, ip_addresses=["127.0.0.1"])
    cert_file, key_file = leaf.write(tmp_path, "receiver")
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(authority.pem)
    port = free_port()
    public = replace(settings, public_url=f"http://127.0.0.1:{port}")
    receiver = push_receiver(public.public_url)
    tls = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
    with serving(receiver, **tls) as url:
        assert url.startswith("https://")
        await register(engine, STATLIG, f"{url}/e")
        with live_server(public, port=port) as server:
            with scim_client(server, organisations.stockholm.token) as client:
                client.post("/Users", json=with_permission("tls", GRANT))
            async with engine.connect() as connection:
                for _ in range(100):
                    (state,) = await Operator(connection, "tests").receivers()
                    if state.failures:
                        break
                    await connection.commit()
                    await asyncio.sleep(0.1)
            assert state.failures and "CERTIFICATE_VERIFY_FAILED" in state.last_error
            assert receiver.received == []
        trusting = replace(public, event_ca_bundle=str(bundle))
        with live_server(trusting, port=port):
            (received,) = receiver.wait_for(1)
    assert received.claims["aud"] == STATLIG
