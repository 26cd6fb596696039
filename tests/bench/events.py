"""Security events measured end to end: ``python -m tests.bench.events``.

A ``scim serve`` process (one worker, pinned to ``--server-cpus``) and, in this process, a
push receiver that verifies every SET against the server's JWKS (as ``tests/events`` does)
and the load. Four cases, each on a fresh database:

- ``revoke``: PATCHes that remove a user's permission, ``--rate`` a second for
  ``--duration`` seconds, each user once; the time from the PATCH's answer (its commit
  happened before) to the SET's arrival, p50 and p99; also from the request's sending.
- ``bulk``: one Bulk of ``--bulk`` user creations, each with a permission: every event is
  delivered, none lost, and how many came twice before de-duplication by ``jti``.
- ``down``: the receiver answers 503 for ``--down`` seconds while users are switched off
  and on; then everything arrives, in order for each user.
- ``restart``: PostgreSQL restarted (``pg_ctlcluster``) while a Bulk's events are being
  delivered: the same checks (PostgreSQL only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from tests.bench.servers import ROOT, Server
from tests.events.receiver import Receiver
from tests.live import free_port, serving

STATLIG = "ansok-om-statlig-ersattning"
GRANT = f"{STATLIG}:asylsokande-i-forskola"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
EXTENSION = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ORG = "2120000142"


def user(index: int, tag: str) -> dict[str, Any]:
    return {
        "schemas": [USER, EXTENSION],
        "userName": f"{tag}{index}@bench.se",
        "name": {"givenName": "Bench", "familyName": f"User {index}"},
        "emails": [{"value": f"{tag}{index}@bench.se", "primary": True}],
        EXTENSION: {
            "hsaId": f"SE{ORG}-{tag.upper()}{index:06d}",
            "permissions": [{"value": GRANT}],
        },
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    async def database(self, name: str) -> str:
        if self.args.sqlite:
            path = self.workdir / f"{name}.db"
            path.unlink(missing_ok=True)
            return f"sqlite+aiosqlite:///{path}"
        url = make_url(self.args.postgres)
        admin = url.set(database="postgres").render_as_string(hide_password=False)
        for statement in (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        ):
            await _admin(admin, statement)
        return url.set(database=name).render_as_string(hide_password=False)

    def scim(self, database: str, *arguments: str, env: dict[str, str] | None = None) -> str:
        answer = subprocess.run(
            [sys.executable, "-m", "scim.cli", *arguments, "--database", database],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        return answer.stdout

    async def prepare(self, name: str, receiver_url: str, port: int) -> tuple[str, str]:
        """A new database with Stockholm, its token, and the receiver; (database, token)."""
        database = await self.database(name)
        self.scim(database, "db", "upgrade")
        self.scim(
            database,
            "tenant",
            "add",
            "--org-number",
            ORG,
            "--name",
            "Stockholm",
            "--kind",
            "kommun",
        )
        self.scim(database, "tenant", "agreements", "--tenant", ORG, STATLIG)
        token = self.scim(database, "token", "issue", "--tenant", ORG).splitlines()[-1].strip()
        self.scim(database, "receiver", "add", "--service", STATLIG, "--push-url", receiver_url)
        return database, token

    def server(self, name: str, database: str, port: int) -> Server:
        return Server(
            name=name,
            argv=[
                *("-m", "scim.cli", "serve", "--database", database, "--log-level", "warning"),
                *("--port", str(port)),
            ],
            port=port,
            probe="/scim/v2/ServiceProviderConfig",
            cpus=self.args.server_cpus,
            env={
                "SCIM_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "SCIM_MAX_BULK_OPERATIONS": str(max(1000, self.args.bulk)),
                "SCIM_MAX_PAYLOAD_SIZE": str(64 * 1024 * 1024),
                "SCIM_RATE_LIMIT_CLIENT": "0",
                "SCIM_RATE_LIMIT_TENANT": "0",
            },
            log=self.workdir / f"{name}.log",
        )

    # -- cases -------------------------------------------------------------------------

    async def revoke(self) -> dict[str, Any]:
        args = self.args
        count = int(args.rate * args.duration)
        port = free_port()
        receiver = _receiver(port)
        with serving(receiver) as receiver_url:
            database, token = await self.prepare(
                "scim_bench_events_revoke", f"{receiver_url}/e", port
            )
            server = self.server("events-revoke", database, port)
            server.start()
            try:
                async with _client(port, token) as client:
                    ids = await _bulk_create(client, count, "r")
                    await asyncio.to_thread(receiver.wait_for, count, 600)
                    receiver.received.clear()
                    sent: dict[str, float] = {}
                    answered: dict[str, float] = {}
                    body = {
                        "schemas": [PATCH],
                        "Operations": [{"op": "remove", "path": f"{EXTENSION}:permissions"}],
                    }

                    async def revoke_one(user_id: str) -> None:
                        sent[user_id] = time.time()
                        response = await client.patch(f"/Users/{user_id}", json=body)
                        response.raise_for_status()
                        answered[user_id] = time.time()

                    started = time.monotonic()
                    tasks = []
                    for index, user_id in enumerate(ids):
                        delay = started + index / args.rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        tasks.append(asyncio.create_task(revoke_one(user_id)))
                    await asyncio.gather(*tasks)
                    offered = count / (time.monotonic() - started)
                    received = await asyncio.to_thread(receiver.wait_for, count, 600)
            finally:
                server.stop()
        arrival = {r.claims["sub_id"]["id"]: r.at for r in received}
        from_answer = [1000 * (arrival[i] - answered[i]) for i in ids]
        from_request = [1000 * (arrival[i] - sent[i]) for i in ids]
        return {
            "changes": count,
            "rate": round(offered, 1),
            "p50_ms": round(percentile(from_answer, 0.5), 1),
            "p99_ms": round(percentile(from_answer, 0.99), 1),
            "max_ms": round(max(from_answer), 1),
            "p50_from_request_ms": round(percentile(from_request, 0.5), 1),
            "p99_from_request_ms": round(percentile(from_request, 0.99), 1),
            "refused": len(receiver.refused),
        }

    async def bulk(self, name: str = "bulk", restart: bool = False) -> dict[str, Any]:
        args = self.args
        port = free_port()
        receiver = _receiver(port)
        with serving(receiver) as receiver_url:
            database, token = await self.prepare(
                f"scim_bench_events_{name}", f"{receiver_url}/e", port
            )
            server = self.server(f"events-{name}", database, port)
            server.start()
            try:
                async with _client(port, token) as client:
                    started = time.monotonic()
                    ids = await _bulk_create(client, args.bulk, name[0])
                    answered = time.monotonic() - started
                    if restart:
                        while len(receiver.received) < args.bulk // 10:
                            await asyncio.sleep(0.05)
                        restarted_at = len(receiver.received)
                        subprocess.run(
                            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
                            check=True,
                        )
                    await _until_complete(receiver, set(ids), 900)
                    delivered = time.monotonic() - started
                    await asyncio.sleep(2)  # anything arriving twice arrives now
            finally:
                server.stop()
        jtis = [r.claims["jti"] for r in receiver.received]
        subjects = {r.claims["sub_id"]["id"] for r in receiver.received}
        result = {
            "operations": args.bulk,
            "bulk_answered_s": round(answered, 1),
            "all_delivered_s": round(delivered, 1),
            "received": len(jtis),
            "unique_jti": len(set(jtis)),
            "lost": len(set(ids) - subjects),
            "invented": len(subjects - set(ids)),
            "refused": len(receiver.refused),
        }
        if restart:
            result["restarted_after"] = restarted_at
        return result

    async def down(self) -> dict[str, Any]:
        args = self.args
        port = free_port()
        receiver = _receiver(port)
        state = {"down": False}
        receiver.answer = lambda claims: (503, {}) if state["down"] else None
        with serving(receiver) as receiver_url:
            database, token = await self.prepare(
                "scim_bench_events_down", f"{receiver_url}/e", port
            )
            server = self.server("events-down", database, port)
            server.start()
            try:
                async with _client(port, token) as client:
                    users = await _bulk_create(client, 50, "d")
                    await asyncio.to_thread(receiver.wait_for, 50, 120)
                    receiver.received.clear()
                    state["down"] = True
                    expected: dict[str, list[str]] = defaultdict(list)
                    ended = time.monotonic() + args.down
                    round_ = 0
                    while time.monotonic() < ended:
                        active = round_ % 2 == 1
                        for user_id in users:
                            op = {"op": "replace", "path": "active", "value": active}
                            response = await client.patch(
                                f"/Users/{user_id}", json={"schemas": [PATCH], "Operations": [op]}
                            )
                            response.raise_for_status()
                            expected[user_id].append("activate" if active else "deactivate")
                        round_ += 1
                        await asyncio.sleep(1)
                    total = sum(len(v) for v in expected.values())
                    back = time.monotonic()
                    state["down"] = False
                    received = await asyncio.to_thread(receiver.wait_for, total, 600)
                    drained = time.monotonic() - back
            finally:
                server.stop()
        seen: dict[str, list[str]] = defaultdict(list)
        for r in received:
            ((uri, _),) = r.claims["events"].items()
            seen[r.claims["sub_id"]["id"]].append(uri.rsplit(":", 1)[-1])
        return {
            "down_s": args.down,
            "events": total,
            "received": len(received),
            "in_order_per_user": all(seen[u] == expected[u] for u in expected),
            "drained_after_back_s": round(drained, 1),
        }


def _receiver(port: int) -> Receiver:
    server = f"http://127.0.0.1:{port}"
    return Receiver(
        jwks_url=f"{server}/events/jwks.json", issuer=f"{server}/scim/v2", audience=STATLIG
    )


def _client(port: int, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}/scim/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=600,
        limits=httpx.Limits(max_connections=64),
    )


async def _bulk_create(client: httpx.AsyncClient, count: int, tag: str) -> list[str]:
    """``count`` users, each with a permission, in one Bulk; their ids."""
    operations = [
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": f"b{i}",
            "data": user(i, tag + uuid.uuid4().hex[:4]),
        }
        for i in range(count)
    ]
    response = await client.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    response.raise_for_status()
    results = response.json()["Operations"]
    assert all(r["status"] == "201" for r in results), results[:3]
    return [r["location"].rsplit("/", 1)[-1] for r in results]


async def _until_complete(receiver: Receiver, ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {r.claims["sub_id"]["id"] for r in list(receiver.received)} >= ids:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not every event arrived")


async def _admin(dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.events")
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--sqlite", action="store_true", help="on SQLite instead (no restart case)")
    parser.add_argument("--cases", default="revoke,bulk,down,restart")
    parser.add_argument("--rate", type=float, default=100.0, help="revocations per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of revocations")
    parser.add_argument("--bulk", type=int, default=10000, help="operations in the Bulk")
    parser.add_argument("--down", type=float, default=60.0, help="seconds the receiver is down")
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "scim-bench-events"))
    parser.add_argument("--output", default=str(ROOT / "tests/bench/events.json"))
    args = parser.parse_args()
    bench = Bench(args)
    results: dict[str, Any] = {"database": "sqlite" if args.sqlite else "postgresql"}
    for case in args.cases.split(","):
        if case == "restart" and args.sqlite:
            continue
        print(f"== {case}", flush=True)
        if case == "revoke":
            results[case] = asyncio.run(bench.revoke())
        elif case == "bulk":
            results[case] = asyncio.run(bench.bulk())
        elif case == "down":
            results[case] = asyncio.run(bench.down())
        elif case == "restart":
            results[case] = asyncio.run(bench.bulk("restart", restart=True))
        print(json.dumps(results[case]), flush=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
