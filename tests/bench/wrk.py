"""The load generator: Debian's wrk, pinned to its own cores, driven by requests.lua."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("requests.lua")
_salt = itertools.count(int(time.time()) % 100_000 * 100)


@dataclass
class Request:
    method: str
    path: str
    body: str = ""


@dataclass
class Figures:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50: float
    p90: float
    p99: float
    max: float
    errors: int
    status_errors: int


def ensure_installed() -> str:
    """wrk's path, installing Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        found = shutil.which("wrk")
    assert found, "wrk could not be installed"
    return found


def write_requests(path: Path, headers: dict[str, str], requests: Iterable[Request]) -> None:
    with path.open("w") as out:
        for name, value in headers.items():
            out.write(f"header\t{name}\t{value}\n")
        for request in requests:
            assert "\t" not in request.body and "\n" not in request.body
            out.write(f"{request.method}\t{request.path}\t{request.body}\n")


def run(
    url: str,
    requests_file: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    cpus: str,
    timeout: float = 60.0,
) -> Figures:
    """One wrk run against ``url`` (scheme, host and port); the paths come from the file."""
    command = [
        "taskset",
        "-c",
        cpus,
        ensure_installed(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout:.0f}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(requests_file),
        str(next(_salt)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next(
        (x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")),
        None,
    )
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    elapsed = data["duration_us"] / 1e6
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Figures(
        requests=data["requests"],
        seconds=elapsed,
        rps=data["requests"] / elapsed if elapsed else 0.0,
        p50=data["p50_us"] / 1000,
        p90=data["p90_us"] / 1000,
        p99=data["p99_us"] / 1000,
        max=data["max_us"] / 1000,
        errors=socket_errors + data["status"],
        status_errors=data["status"],
    )
