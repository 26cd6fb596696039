"""Instructions the server executes per created user: a measure of the write path that, unlike
requests per second, does not move with what else the machine (or its host) is doing.

    python -m tests.bench.instructions                       # PostgreSQL, this checkout
    python -m tests.bench.instructions --source /tmp/before  # another checkout, to compare
    python -m tests.bench.instructions --sqlite

It runs the app in process (no HTTP server; httpx's ASGI transport) under valgrind's callgrind,
with counting switched on only around the measured requests: Bulk requests of --size user
creates (a few groups of them among the operations, as ``bulk_probe`` makes them), single
``POST /Users``, ``GET /Users/{id}`` of the users the warm-up's Bulk request made, each
once per --requests (the benchmark's ``get`` case), ``PATCH /Users/{id}`` of the same users,
each given a new given name per round (``patch``), and pages of 100 of them (``page``: what
a ``co`` or sorted page costs per user). On PostgreSQL the count is the server's
own work (the database runs in its own processes); SQLite's work is in process and counted.
A new database is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.bench.bulk_probe import admin

READY, DONE = "instructions: ready", "instructions: done"
CASES = {
    "bulk": "Bulk, per created user",
    "post": "POST /Users, per request",
    "get": "GET /Users/{id}, per request",
    "page": "GET /Users?count=100, per user listed",
    "patch": "PATCH /Users/{id}, per request",
}
_DONE_TO = {"bulk": "created", "post": "created", "get": "read", "page": "read", "patch": "written"}


async def _child(url: str, case: str, size: int, requests: int) -> None:
    """Runs under callgrind: warms up, then the measured requests between READY and DONE."""
    import httpx

    from scim.app import create_app
    from scim.settings import Settings
    from tests.bench.bulk_probe import bulk_request, user
    from tests.live import migrated_with_stockholm

    token = await migrated_with_stockholm(url, ["ansok-om-statlig-ersattning"])
    app = create_app(Settings(database_url=url))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://scim.test/scim/v2", headers=headers, timeout=600
    ) as client:
        serial = 0
        bodies = []
        for count in [200] + [size] * requests:
            body, users = bulk_request(serial, count)
            serial += users
            bodies.append((json.dumps(body).encode(), users))
        singles = [json.dumps(user(serial + i)).encode() for i in range(20 + size)]
        # Warm up: every code path once, caches filled, then counting starts.
        warm_up = await client.post("/Bulk", content=bodies[0][0])
        warm_up.raise_for_status()
        for content in singles[:20]:
            (await client.post("/Users", content=content)).raise_for_status()
        ids = [
            op["location"].rsplit("/", 1)[1]
            for op in warm_up.json()["Operations"]
            if "/Users/" in op["location"]
        ]
        if case in ("get", "page", "patch"):
            # As a served request is: its token's principal kept while changes of credentials
            # are listened for (the server's lifespan does both; its other tasks would count).
            verified = app.state.authenticator.verified
            listening = asyncio.create_task(verified.listener.run())
            while not verified.listener.up:
                await asyncio.sleep(0.01)
            verified.watching = True
            gc.freeze()  # as the lifespan leaves what was loaded before serving
        for resource_id in ids[:20]:
            (await client.get(f"/Users/{resource_id}")).raise_for_status()
        print(READY, flush=True)
        await asyncio.sleep(2)  # callgrind_control switches counting on meanwhile
        created = 0
        if case == "bulk":
            for content, users in bodies[1:]:
                response = await client.post("/Bulk", content=content)
                response.raise_for_status()
                statuses = {op["status"] for op in response.json()["Operations"]}
                assert statuses == {"201"}, statuses
                created += users
        elif case == "get":
            for _ in range(requests):
                for resource_id in ids:
                    await _call(app, "GET", f"/scim/v2/Users/{resource_id}", token)
                    created += 1
        elif case == "patch":
            for round_ in range(requests):
                for resource_id in ids:
                    # A new given name each time: a PATCH that changes nothing writes nothing.
                    body = {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [
                            {"op": "replace", "path": "name.givenName", "value": f"G{round_}"}
                        ],
                    }
                    await _call(app, "PATCH", f"/scim/v2/Users/{resource_id}", token, body=body)
                    created += 1
        elif case == "page":
            for _ in range(requests * 10):
                for start in (1, 101):
                    await _call(
                        app, "GET", "/scim/v2/Users", token, f"count=100&startIndex={start}"
                    )
                    created += 100
        else:
            for content in singles[20:]:
                (await client.post("/Users", content=content)).raise_for_status()
                created += 1
        print(f"{DONE} {created}", flush=True)
        await asyncio.sleep(2)
        if case in ("get", "page", "patch"):
            listening.cancel()
    await app.state.engine.dispose()


async def _call(
    app: Any, method: str, path: str, token: str, query: str = "", body: Any = None
) -> None:
    """A request sent to the ASGI app itself, so that only the server's instructions count (a
    GET costs httpx, building the request and reading the answer, about half as much again)."""
    content = b"" if body is None else json.dumps(body).encode()
    headers = [(b"host", b"scim.test"), (b"authorization", f"Bearer {token}".encode())]
    if body is not None:
        headers += [
            (b"content-type", b"application/scim+json"),
            (b"content-length", str(len(content)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("scim.test", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


def _measure(args: argparse.Namespace, url: str, case: str) -> tuple[int, int]:
    """(instructions, users created) of one case, in a process of its own under callgrind."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        # The measured checkout's scim and tests, with this file's measuring code.
        source = args.source or Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(source)}
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            url,
            case,
            str(args.size),
            str(args.requests),
        ]
        log = (Path(directory) / "valgrind.log").open("w+")
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=source,
        )
        assert process.stdout is not None
        created = 0
        for line in process.stdout:
            if line.startswith(READY):
                _control(process.pid, "on")
            elif line.startswith(DONE):
                _control(process.pid, "off")
                created = int(line.split()[-1])
        if process.wait() != 0 or not created:
            log.seek(0)
            raise SystemExit(f"the measured process failed ({case}):\n{log.read()[-3000:]}")
        log.close()
        totals = next(line for line in out.read_text().splitlines() if line.startswith("totals:"))
        return int(totals.split()[1]), created


def _control(pid: int, state: str) -> None:
    subprocess.run(
        ["callgrind_control", "--instr=" + state, str(pid)], check=True, capture_output=True
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, case, size, requests = sys.argv[2:6]
        asyncio.run(_child(url, case, int(size), int(requests)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--size", type=int, default=500, help="operations per Bulk request")
    parser.add_argument(
        "--requests", type=int, default=2, help="measured Bulk requests; reads: rounds"
    )
    parser.add_argument("--source", type=Path, help="the checkout to measure (default: this)")
    parser.add_argument(
        "--cases", nargs="+", choices=CASES, default=list(CASES), help="what to count"
    )
    args = parser.parse_args()
    for case in args.cases:
        started = time.perf_counter()
        if args.sqlite:
            with tempfile.TemporaryDirectory() as directory:
                url = f"sqlite+aiosqlite:///{Path(directory) / 'instructions.db'}"
                instructions, created = _measure(args, url, case)
        else:
            name = f"scim_instructions_{uuid.uuid4().hex[:8]}"
            asyncio.run(admin(args.postgres, f'CREATE DATABASE "{name}"'))
            try:
                url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
                instructions, created = _measure(args, url, case)
            finally:
                asyncio.run(admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        print(
            f"{CASES[case]}: {instructions / created:,.0f} instructions "
            f"({created} {_DONE_TO[case]}, "
            f"{time.perf_counter() - started:.0f} s under valgrind)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
