"""Throughput of POST /Bulk against the real server, compared with single POST /Users.

Starts ``scim serve`` on a fresh database (PostgreSQL: a new database on the server named by
--postgres, dropped afterwards; SQLite: a temporary file), creates an organisation and a
token through the CLI, then sends --requests Bulk requests of --size operations: users, and a
few groups per request whose members name users of the same request by bulkId. Then the same
number of users as single POST /Users (--single, with --concurrency requests in flight).

    python tests/bench/bulk_probe.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test
    python tests/bench/bulk_probe.py --sqlite

Bounded: a fixed number of requests, to 127.0.0.1 only, then the server is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import asyncpg
import httpx
from sqlalchemy import make_url

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ESERVICES = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ORG = "2120000142"
SERVICE = "ansok-om-statlig-ersattning"
PERMISSION = f"{SERVICE}:asylsokande-i-grundskola"
GROUPS_PER_REQUEST = 5
MEMBERS_PER_GROUP = 40


def user(serial: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"hsaId": f"SE{ORG}-B{serial:07d}"}
    if serial % 4 == 0:
        extension["permissions"] = [{"value": PERMISSION}]
    return {
        "schemas": [USER, ESERVICES],
        "userName": f"user{serial}@stockholm.se",
        "name": {"givenName": f"Given{serial}", "familyName": f"Family{serial}"},
        "displayName": f"Given{serial} Family{serial}",
        "emails": [{"value": f"user{serial}@stockholm.se", "type": "work", "primary": True}],
        "active": True,
        ESERVICES: extension,
    }


def bulk_request(first: int, size: int) -> tuple[dict[str, Any], int]:
    """``size`` operations: users from serial ``first`` on, and groups of some of them."""
    users = size - GROUPS_PER_REQUEST
    operations: list[dict[str, Any]] = [
        {"method": "POST", "path": "/Users", "bulkId": f"u{first + i}", "data": user(first + i)}
        for i in range(users)
    ]
    for g in range(GROUPS_PER_REQUEST):
        members = [
            {"value": f"bulkId:u{first + (g * MEMBERS_PER_GROUP + m) % users}"}
            for m in range(MEMBERS_PER_GROUP)
        ]
        # Some groups come first: their members are forward references.
        operations.insert(
            0 if g % 2 == 0 else len(operations),
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": f"g{first}-{g}",
                "data": {
                    "schemas": [GROUP],
                    "displayName": f"Group {first}-{g}",
                    "members": members,
                },
            },
        )
    return {"schemas": [BULK], "Operations": operations}, users


def scim(source: str | None) -> tuple[list[str], dict[str, str]]:
    """The command that runs the CLI, from this checkout or from ``source`` (another tree)."""
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    return [sys.executable, "-m", "scim.cli"], env


def cli(source: str | None, database: str, *args: str) -> str:
    command, env = scim(source)
    done = subprocess.run(
        [*command, *args, "--database", database],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=source,
    )
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def admin(url: str, statement: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def wait_until_up(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(f"{base}/ServiceProviderConfig")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def measure(base: str, token: str, args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as client:
        serial = 0
        users = 0
        started = time.perf_counter()
        for _ in range(args.requests):
            body, count = bulk_request(serial, args.size)
            serial += count
            # Encoded beforehand: what is timed is the server's work, not the client's.
            content = json.dumps(body).encode()
            t0 = time.perf_counter()
            response = await client.post("/Bulk", content=content)
            elapsed = time.perf_counter() - t0
            response.raise_for_status()
            results = response.json()["Operations"]
            failed = [r for r in results if not r["status"].startswith("2")]
            if failed:
                raise RuntimeError(f"{len(failed)} operations failed, e.g. {failed[0]}")
            users += count
            print(f"  bulk of {len(results)} ops: {elapsed:.2f}s, {count / elapsed:.0f} users/s")
        total = time.perf_counter() - started
        print(f"Bulk: {users} users in {total:.2f}s: {users / total:.0f} users/s")

        if not args.single:
            return
        queue = asyncio.Queue[int]()
        for i in range(args.single):
            queue.put_nowait(serial + i)

        async def worker() -> None:
            while not queue.empty():
                response = await client.post("/Users", json=user(queue.get_nowait()))
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        total = time.perf_counter() - started
        print(
            f"Single POST /Users ({args.concurrency} in flight): {args.single} users in "
            f"{total:.2f}s: {args.single / total:.0f} users/s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--postgres", metavar="URL", help="server to create a database on")
    target.add_argument("--sqlite", action="store_true")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--source", metavar="DIR", help="run the server from this source tree (to compare)"
    )
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="bulk-probe-")
    if args.postgres:
        name = f"bulk_probe_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(admin(args.postgres, f'CREATE DATABASE "{name}"'))
        database = make_url(args.postgres).set(database=name).render_as_string(False)
    else:
        database = f"sqlite+aiosqlite:///{directory}/probe.db"
    server = None
    try:
        source = args.source
        cli(source, database, "db", "upgrade")
        cli(source, database, "tenant", "add", "--org-number", ORG, "--name", "Stockholms stad",
            "--kind", "kommun")  # fmt: skip
        cli(source, database, "tenant", "agreements", "--tenant", ORG, SERVICE)
        token = cli(source, database, "token", "issue", "--tenant", ORG).strip().splitlines()[-1]
        port = free_port()
        command, env = scim(source)
        serve = ["serve", "--port", str(port), "--log-level", "warning", "--database", database]
        server = subprocess.Popen(
            [*command, *serve],
            env=env,
            cwd=source,
        )
        base = f"http://127.0.0.1:{port}/scim/v2"
        asyncio.run(wait_until_up(base))
        asyncio.run(measure(base, token, args))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if args.postgres:
            asyncio.run(admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
