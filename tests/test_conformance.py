"""scim2-tester's full check against ``scim serve`` running on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from conformance.check import failures, run
from tests.conftest import Organisations
from tests.live import free_port


@pytest.fixture
def live_server(database_url: str, clean: None) -> Iterator[str]:
    """``scim serve`` in a subprocess, on the (emptied) test database."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scim.cli",
            "serve",
            "--migrate",
            "--port",
            str(port),
            "--database",
            database_url,
            "--log-level",
            "warning",
        ],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/scim/v2"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ServiceProviderConfig", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"scim serve did not start:\n{output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_scim2_tester_finds_nothing_to_fault(
    live_server: str, organisations: Organisations
) -> None:
    results = run(live_server, token=organisations.stockholm.token)
    assert len(results) > 100
    assert failures(results) == []
