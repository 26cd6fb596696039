"""The benchmark, in one command:

    python -m tests.bench                      # 20,000 users, and 1,000,000 in 300 organisations
    python -m tests.bench --quick              # small data, short runs: a check that all works

It loads the data, starts each server pinned to --server-cpus, runs every case with wrk pinned
to --client-cpus, prints the table and writes it as JSON (--output). See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import make_url

from tests.bench import load, reference, report, servers, wrk
from tests.bench.cases import BY_NAME, CASES, Case, Subject
from tests.bench.data import organisations, surname_fragments
from tests.bench.servers import Server

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "scim", "reference" or "floor"
    dataset: str
    workers: int


TARGETS = [
    Target("scim2-server", "reference", "memory", 1),
    Target("floor-1w", "floor", "small-pg", 1),
    Target("floor-2w", "floor", "small-pg", 2),
    Target("scim-sqlite-1w", "scim", "small-sqlite", 1),
    Target("scim-sqlite-2w", "scim", "small-sqlite", 2),
    Target("scim-pg-1w", "scim", "small-pg", 1),
    Target("scim-pg-2w", "scim", "small-pg", 2),
    Target("scim-big-1w", "scim", "big-pg", 1),
    Target("scim-big-2w", "scim", "big-pg", 2),
]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--users", type=int, default=20_000, help="users of the small dataset")
    parser.add_argument("--big-users", type=int, default=1_000_000, help="users of the big one")
    parser.add_argument("--tenants", type=int, default=300, help="organisations of the big one")
    parser.add_argument("--big-group", type=int, default=100_000, help="members of the big group")
    parser.add_argument("--quick", action="store_true", help="2,000 / 30,000 users, 3 s runs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients")
    parser.add_argument("--server-cpus", default="1", help="taskset list for the servers")
    parser.add_argument("--client-cpus", default="0", help="taskset list for wrk")
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help="PostgreSQL server; databases scim_bench_small and scim_bench_big are recreated",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scim-bench"))
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--targets", help="comma-separated subset of: " + _names(TARGETS))
    parser.add_argument("--cases", help="comma-separated subset of: " + _names(CASES))
    parser.add_argument(
        "--reuse", action="store_true", help="keep datasets loaded by an earlier run"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="each case's servers measured this many times in turn; the median is reported",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    if args.quick:
        args.users, args.big_users, args.tenants = 2_000, 30_000, 30
        args.big_group, args.duration = 10_000, 3.0
    return args


def _names(items: list[Any]) -> str:
    return ", ".join(item.name for item in items)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- data -------------------------------------------------------------------------------------


def _dataset_url(key: str, args: argparse.Namespace) -> str:
    if key == "small-sqlite":
        return f"sqlite+aiosqlite:///{args.workdir / 'scim_bench_small.db'}"
    name = "scim_bench_small" if key == "small-pg" else "scim_bench_big"
    return f"{args.postgres.rstrip('/')}/{name}"


def _dataset(key: str, args: argparse.Namespace) -> load.Dataset:
    """Load (or with --reuse, find) one of this server's datasets; verify the loader on it."""
    manifest = args.workdir / f"{key}.json"
    if args.reuse and manifest.exists():
        dataset = load.Dataset.read(manifest)
        print(f"{key}: reusing {dataset.total_users:,} users ({manifest})", flush=True)
        return dataset
    big = key == "big-pg"
    users = args.big_users if big else args.users
    tenants = args.tenants if big else 1
    print(f"{key}: loading {users:,} users in {tenants} organisation(s) ...", flush=True)
    dataset = asyncio.run(
        load.build(_dataset_url(key, args), users, tenants, args.big_group, sample=25_000)
    )
    asyncio.run(load.verify(dataset))
    dataset.save(manifest)
    print(
        f"{key}: loaded in {dataset.load_seconds:.1f} s; the benchmarked organisation has "
        f"{dataset.users:,} users, its big group {dataset.big_group_members:,} members",
        flush=True,
    )
    return dataset


def _subject(dataset: load.Dataset, share: int, of: int) -> Subject:
    """What one server's cases use; ``share`` of ``of`` of the non-members, so that runs on
    the same database each add members the group does not have yet."""
    return Subject(
        base_path="/scim/v2",
        token=dataset.token,
        org_number=dataset.org_number,
        domain=dataset.domain,
        user_ids=dataset.user_ids,
        user_names=dataset.user_names,
        big_group=dataset.big_group,
        non_members=dataset.non_members[share::of],
        fragments=dataset.fragments,
        org_users=dataset.users,
        salt=share,
    )


def _reference_subject(server: Server, args: argparse.Namespace) -> tuple[Subject, float]:
    """Users loaded into scim2-server through its Bulk endpoint; how long that took."""
    org = organisations(1, args.users)[0]
    started = time.perf_counter()
    ids, names, group, rest = reference.load(server.url(""), "bench-token", org, args.big_group)
    seconds = time.perf_counter() - started
    subject = Subject(
        base_path=reference.BASE_PATH,
        token="bench-token",
        org_number=org.org_number,
        domain=org.domain,
        user_ids=ids,
        user_names=names,
        big_group=group,
        non_members=rest,
        fragments=surname_fragments(random.Random(7), 200),
        org_users=args.users,
        extension=False,
    )
    return subject, seconds


# -- running ----------------------------------------------------------------------------------


def _server(target: Target, args: argparse.Namespace, datasets: dict[str, load.Dataset]) -> Server:
    port, log = _free_port(), args.workdir / f"{target.name}.log"
    if target.kind == "reference":
        return servers.reference(target.name, "bench-token", port, args.server_cpus, log)
    dataset = datasets[target.dataset]
    if target.kind == "floor":
        dsn = make_url(dataset.url).set(drivername="postgresql").render_as_string(False)
        return servers.floor(
            target.name, dsn, dataset.tenant_id, port, target.workers, args.server_cpus, log
        )
    return servers.ours(
        target.name, dataset.url, port, target.workers, args.server_cpus, log, "/scim/v2"
    )


def _run_case(
    server: Server, target: Target, subject: Subject, case: Case, args: argparse.Namespace
) -> report.Row:
    requests_file = args.workdir / f"{target.name}-{case.name}.requests"
    headers = {
        "Authorization": f"Bearer {subject.token}",
        "Content-Type": "application/scim+json",
    }
    wrk.write_requests(requests_file, headers, case.build(subject))
    threads = len(args.client_cpus.split(","))
    connections = case.connections or args.connections
    run = {
        "connections": connections,
        "threads": min(threads, connections),
        "cpus": args.client_cpus,
    }
    # Warmed up for a second, as a server that has been running is: its pool's connections
    # open, their statements prepared, the shapes of its requests learnt (a write case
    # measured from the start had a p99 of 100-300 ms from its first second alone). A read
    # case warms up on its own requests; a write case on its others, from the end of its
    # list, which its run does not reach. A Bulk request takes seconds: it is its own.
    if case.per_request == 1:
        warm_file = requests_file
        if case.writes:
            warm_file = requests_file.with_suffix(".warm")
            wrk.write_requests(warm_file, headers, reversed(case.build(subject)))
        wrk.run(server.url(""), warm_file, seconds=1, **run)
        server.settle()  # what the warm-up left in flight (scim2-server's take seconds)
    seconds = args.duration * (3 if case.per_request > 1 else 1)
    figures = wrk.run(server.url(""), requests_file, seconds=seconds, timeout=120, **run)
    if figures.requests < 20:
        # Seconds per request (scim2-server's searches): a longer run for a usable figure.
        figures = wrk.run(server.url(""), requests_file, seconds=seconds * 4, timeout=120, **run)
    memory = server.memory()
    return report.Row(
        target=target.name,
        dataset=target.dataset,
        org_users=subject.org_users,
        workers=target.workers,
        case=case.name,
        rps=figures.rps,
        units=figures.rps * case.per_request,
        p50=figures.p50,
        p90=figures.p90,
        p99=figures.p99,
        errors=figures.errors,
        requests=figures.requests,
        rss_mib=memory.total,
        rss_worker_mib=memory.per_worker,
    )


def _measured(
    target: Target,
    case: Case,
    subject: Subject,
    args: argparse.Namespace,
    datasets: dict[str, load.Dataset],
    reference_server: Server | None,
) -> report.Row:
    """One case on one server: ours and the floor started for it and stopped after it; the
    users a write created deleted again, and PostgreSQL vacuumed, so that every server meets
    the dataset as it was loaded (``load.reset``)."""
    server = reference_server if target.kind == "reference" else None
    if server is None:
        server = _server(target, args, datasets)
        server.start()
    try:
        row = _run_case(server, target, subject, case, args)
    finally:
        if server is reference_server:
            server.settle()  # its requests still in flight would run beside the next case
        else:
            server.stop()
    print(
        f"  {target.name:<15} {row.rps:9.1f} req/s  p50 {row.p50:8.1f} ms  "
        f"p99 {row.p99:8.1f} ms  errors {row.errors}  RSS {row.rss_mib:.0f} MiB",
        flush=True,
    )
    writer = case.writes and target.kind == "scim"
    if writer and (removed := asyncio.run(load.reset(datasets[target.dataset]))):
        print(f"  {target.name}: removed the {removed:,} users the case created", flush=True)
    return row


def _machine(args: argparse.Namespace) -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    memory = next(x for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x)
    url = make_url(args.postgres + "/postgres")

    async def version() -> str:
        connection = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, database="postgres"
        )
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    wrk_version = subprocess.run([wrk.ensure_installed(), "-v"], capture_output=True, text=True)
    return {
        "cpu": fields.get("Model name", "?").strip(),
        "cpus": fields.get("CPU(s)", "?").strip(),
        "memory_gib": round(int(memory.split()[1]) / 1024**2, 1),
        "postgresql": asyncio.run(version()),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n")[0].strip(),
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    wrk.ensure_installed()
    chosen = set(args.targets.split(",")) if args.targets else {t.name for t in TARGETS}
    targets = [t for t in TARGETS if t.name in chosen]
    cases = [BY_NAME[n] for n in args.cases.split(",")] if args.cases else CASES
    machine = _machine(args)
    print(f"Machine: {machine}", flush=True)

    datasets: dict[str, load.Dataset] = {}
    loads: dict[str, Any] = {}
    for key in dict.fromkeys(t.dataset for t in targets if t.kind != "reference"):
        datasets[key] = _dataset(key, args)
        d = datasets[key]
        loads[key] = {"users": d.total_users, "tenants": d.tenants, "seconds": d.load_seconds}

    # Case by case, every server in turn: the figures a ratio compares are measured minutes
    # apart at most, not the whole run apart (this kind of machine's speed drifts by a third
    # within minutes). scim2-server keeps its data in memory and runs throughout; the others
    # start anew for each case, so that none does its background work beside another's case.
    subjects: dict[str, Subject] = {}
    on_dataset: dict[str, int] = {}
    reference_server = None
    for target in targets:
        if target.kind == "reference":
            reference_server = _server(target, args, datasets)
            print(f"{target.name}: starting (taskset -c {args.server_cpus})", flush=True)
            reference_server.start()
            subject, seconds = _reference_subject(reference_server, args)
            loads["scim2-server"] = {"users": args.users, "tenants": 1, "seconds": seconds}
            print(f"{target.name}: loaded {args.users:,} users in {seconds:.1f} s", flush=True)
        elif target.kind == "scim":
            share = on_dataset.get(target.dataset, 0)
            on_dataset[target.dataset] = share + 1
            subject = _subject(datasets[target.dataset], share, 2)
        else:
            subject = _subject(datasets[target.dataset], 0, 2)
        subjects[target.name] = subject

    # With --rounds, a case's servers are measured in turn, round after round, and each
    # server's median round is its row: one round that met the host's slowest minute (its
    # speed swings by half within minutes) no longer decides a ratio.
    rows: list[report.Row] = []
    try:
        for case in cases:
            print(f"{case.name}: {case.title}", flush=True)
            measured: dict[str, list[report.Row]] = {}
            for _ in range(args.rounds):
                for target in targets:
                    if target.kind == "floor" and case.name != "get":
                        continue
                    measured.setdefault(target.name, []).append(
                        _measured(
                            target, case, subjects[target.name], args, datasets, reference_server
                        )
                    )
            rows.extend(report.median(rounds) for rounds in measured.values())
    finally:
        if reference_server is not None:
            reference_server.stop()

    verdicts = report.annotate(rows)
    print()
    print(report.table(rows))
    print()
    print(report.verdicts_table(verdicts))
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m tests.bench", *(argv or sys.argv[1:])]),
        "machine": machine,
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("targets", "cases")},
        "loads": loads,
        "rows": [asdict(r) for r in rows],
        "verdicts": verdicts,
    }
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nWritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
