"""Server processes under test: started pinned to their cores, in their own session so that
exactly they (and their workers) are stopped, and measured by their resident memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Requests per second per client and per organisation that the servers under test allow.
RATE_LIMIT = 1_000_000


def _uvicorn(factory: str, port: int, workers: int) -> list[str]:
    """uvicorn as ``scim serve`` runs it: httptools, uvloop, no access log."""
    return [
        *("-m", "uvicorn", "--factory", factory, "--http", "httptools", "--loop", "uvloop"),
        *("--no-access-log", "--log-level", "warning", "--port", str(port)),
        *("--workers", str(workers)),
    ]


@dataclass
class Memory:
    """Resident memory in MiB: all processes of the server, and its largest worker."""

    total: float
    per_worker: float
    processes: int


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command (None if the process is gone); the
    command may hold spaces and parentheses: the fields follow the last ")"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _processes_in_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) and int(fields[2]) == group:
            found.append(int(entry.name))
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """One server: ``argv`` run under ``taskset -c cpus``, answering at ``probe`` when up."""

    name: str
    argv: list[str]
    port: int
    probe: str
    cpus: str
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            ["taskset", "-c", self.cpus, sys.executable, *self.argv],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log}")
            try:
                with urllib.request.urlopen(self.url(self.probe), timeout=2):
                    pass
                if self._workers_up():
                    return
            except urllib.error.HTTPError:
                if self._workers_up():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s: {self.log}")

    def _workers_up(self) -> bool:
        # Several workers: the supervisor plus one process each (and none still starting).
        return self.workers == 1 or len(self._processes()) > self.workers

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _processes(self) -> list[int]:
        assert self.process is not None
        return _processes_in_group(self.process.pid)

    def memory(self) -> Memory:
        """VmRSS from /proc of every process of the server's session."""
        assert self.process is not None
        pids = self._processes()
        sizes = {pid: _rss_kib(pid) for pid in pids}
        workers = [kib for pid, kib in sizes.items() if pid != self.process.pid or len(pids) == 1]
        return Memory(
            total=sum(sizes.values()) / 1024,
            per_worker=max(workers or [0]) / 1024,
            processes=len(pids),
        )

    def settle(self, timeout: float = 300.0) -> float:
        """Wait until the server has finished what it was still doing (requests a run left
        in flight: scim2-server's searches take seconds each), so that it takes no CPU from
        whatever runs next; the seconds waited."""
        started = time.monotonic()
        before = self._cpu_ticks()
        while time.monotonic() - started < timeout:
            time.sleep(0.5)
            now = self._cpu_ticks()
            if now - before <= 2:  # at most 20 ms of CPU in half a second: idle
                break
            before = now
        return time.monotonic() - started

    def _cpu_ticks(self) -> int:
        stats = [_stat(pid) for pid in self._processes()]
        return sum(int(f[11]) + int(f[12]) for f in stats if f)  # utime, stime

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def ours(
    name: str, url: str, port: int, workers: int, cpus: str, log: Path, base_path: str
) -> Server:
    return Server(
        name=name,
        argv=[
            *("-m", "scim.cli", "serve", "--database", url, "--log-level", "warning"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        port=port,
        probe=f"{base_path}/ServiceProviderConfig",
        cpus=cpus,
        workers=workers,
        # The rate limiter runs and counts, as in production, at limits the load never
        # reaches (the default of 2,000 requests/s per client would turn fast GETs into 429s).
        env={"SCIM_RATE_LIMIT_CLIENT": str(RATE_LIMIT), "SCIM_RATE_LIMIT_TENANT": str(RATE_LIMIT)},
        log=log,
    )


def floor(
    name: str, dsn: str, tenant: int, port: int, workers: int, cpus: str, log: Path
) -> Server:
    return Server(
        name=name,
        argv=_uvicorn("tests.bench.floor:create_app", port, workers),
        port=port,
        probe="/scim/v2/Users/none",
        cpus=cpus,
        workers=workers,
        env={"BENCH_FLOOR_DSN": dsn, "BENCH_FLOOR_TENANT": str(tenant)},
        log=log,
    )


def reference(name: str, token: str, port: int, cpus: str, log: Path) -> Server:
    return Server(
        name=name,
        argv=_uvicorn("tests.bench.reference:create_app", port, 1),
        port=port,
        probe="/v2/ServiceProviderConfig",
        cpus=cpus,
        env={"BENCH_REFERENCE_TOKEN": token},
        log=log,
    )
