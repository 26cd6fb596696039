"""PostgreSQL restarting under load: writes during the restart fail fast with 503, service
resumes by itself, and every write that was acknowledged is there afterwards.

The test runs its own PostgreSQL cluster (initdb in a temporary directory, on a free port), so
restarting it disturbs nothing else. It runs in the PostgreSQL pass of the suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scim.settings import Settings
from tests.conftest import user_body
from tests.live import free_port, live_server, migrated_with_stockholm

BIN = Path("/usr/lib/postgresql/15/bin")
WRITERS = 4
RESTART_AFTER = 1.5  # seconds of writing before the restart
WRITE_FOR = 6.0

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
    ),
    pytest.mark.skipif(not (BIN / "initdb").exists(), reason="needs PostgreSQL's server binaries"),
]


def _as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class Cluster:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def ctl(self, *arguments: str) -> None:
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-l",
                str(self.directory / "log"),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                "-w",
                *arguments,
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under pytest's temporary root, which the postgres user cannot enter.
    with tempfile.TemporaryDirectory(prefix="scim-pg-") as name:
        yield from _cluster(Path(name))


def _cluster(directory: Path) -> Iterator[Cluster]:
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    subprocess.run(
        _as_postgres(
            str(BIN / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres"
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = Cluster(directory, free_port())
    cluster.ctl("start")
    try:
        yield cluster
    finally:
        cluster.ctl("-m", "immediate", "stop")


async def _write(
    client: httpx.AsyncClient, writer: int, until: float
) -> list[tuple[str, int, float]]:
    """POST users one after another; (userName, status, when) of each attempt."""
    results = []
    number = 0
    while time.monotonic() < until:
        name = f"writer{writer}.user{number}@stockholm.se"
        number += 1
        try:
            response = await client.post("/Users", json=user_body(name))
            status = response.status_code
        except httpx.TransportError:
            status = 0
        results.append((name, status, time.monotonic()))
        if status != 201:
            await asyncio.sleep(0.05)
    return results


def test_writes_survive_a_database_restart(cluster: Cluster) -> None:
    token = asyncio.run(migrated_with_stockholm(cluster.url))
    with live_server(Settings(database_url=cluster.url, pool_size=4)) as url:

        async def run() -> tuple[list[tuple[str, int, float]], float, set[str]]:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
            async with httpx.AsyncClient(
                base_url=f"{url}/scim/v2", headers=headers, timeout=30
            ) as client:
                until = time.monotonic() + WRITE_FOR
                writers = [asyncio.create_task(_write(client, n, until)) for n in range(WRITERS)]
                await asyncio.sleep(RESTART_AFTER)
                await asyncio.to_thread(cluster.ctl, "-m", "fast", "restart")
                back = time.monotonic()
                attempts = [attempt for done in await asyncio.gather(*writers) for attempt in done]
                found: set[str] = set()
                index = 1
                while True:
                    page = (
                        await client.get("/Users", params={"startIndex": index, "count": 1000})
                    ).json()
                    found |= {user["userName"] for user in page["Resources"]}
                    index += 1000
                    if index > page["totalResults"]:
                        break
                return attempts, back, found

        attempts, back, found = asyncio.run(run())
    statuses = {status for _, status, _ in attempts}
    acknowledged = {name for name, status, _ in attempts if status == 201}
    refused = [name for name, status, _ in attempts if status == 503]
    print(
        f"\nrestart under load: {len(attempts)} writes, {len(acknowledged)} acknowledged, "
        f"{len(refused)} refused with 503, {len(acknowledged & found)} acknowledged found, "
        f"{len(found - acknowledged)} unacknowledged found"
    )
    assert statuses <= {201, 503}, statuses  # never a 500, never a hang
    assert acknowledged <= found  # no acknowledged write lost
    assert any(status == 201 and when > back for _, status, when in attempts)  # resumed by itself


async def _read(
    client: httpx.AsyncClient, resource_id: str, until: float
) -> list[tuple[int, float]]:
    """GET one user again and again; (status, when) of each attempt."""
    results = []
    while time.monotonic() < until:
        try:
            status = (await client.get(f"/Users/{resource_id}")).status_code
        except httpx.TransportError:
            status = 0
        results.append((status, time.monotonic()))
        if status != 200:
            await asyncio.sleep(0.05)
    return results


def test_reads_resume_by_themselves_after_a_database_restart(cluster: Cluster) -> None:
    """GET by id is read by asyncpg itself (``scim.storage.direct``), outside SQLAlchemy's
    execution, which is what replaces a broken connection otherwise. With nothing but such
    reads running, every pooled connection breaks in the restart: a read that meets one, or
    finds the database still starting, gets 503 (never 500), and the reads resume on new
    connections by themselves."""
    token = asyncio.run(migrated_with_stockholm(cluster.url))
    with live_server(Settings(database_url=cluster.url, pool_size=4)) as url:

        async def run() -> tuple[list[tuple[int, float]], float]:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
            async with httpx.AsyncClient(
                base_url=f"{url}/scim/v2", headers=headers, timeout=30
            ) as client:
                created = await client.post("/Users", json=user_body("read.again@stockholm.se"))
                assert created.status_code == 201, created.text
                until = time.monotonic() + WRITE_FOR
                readers = [
                    asyncio.create_task(_read(client, created.json()["id"], until))
                    for _ in range(WRITERS)
                ]
                await asyncio.sleep(RESTART_AFTER)
                await asyncio.to_thread(cluster.ctl, "-m", "fast", "restart")
                back = time.monotonic()
                done = await asyncio.gather(*readers)
                return [attempt for attempts in done for attempt in attempts], back

        attempts, back = asyncio.run(run())
    statuses = [status for status, _ in attempts]
    after = [status for status, when in attempts if when > back]
    print(
        f"\nrestart under reads: {len(attempts)} reads, {statuses.count(503)} refused with 503, "
        f"{after.count(200)} answered after the restart"
    )
    assert set(statuses) <= {200, 503}, set(statuses)  # never a 500, never a hang
    assert after.count(200) > 10 and after[-WRITERS:] == [200] * WRITERS  # resumed by itself
