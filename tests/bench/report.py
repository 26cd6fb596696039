"""The results table: figures per server and case, ratios to scim2-server and to the floor,
and the issue's targets judged met or missed (reported, never asserted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REFERENCE = "scim2-server"


@dataclass
class Row:
    target: str
    dataset: str
    org_users: int
    workers: int
    case: str
    rps: float
    units: float
    p50: float
    p90: float
    p99: float
    errors: int
    requests: int
    rss_mib: float
    rss_worker_mib: float
    vs_reference: float | None = None
    vs_floor: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Goal:
    """A target of the issue on some rows: what it says, and whether a row meets it."""

    label: str
    applies: Callable[[Row], bool]
    check: Callable[[Row], bool | None]


def _ours(row: Row) -> bool:
    return row.target.startswith("scim-")


def _small(row: Row) -> bool:
    return _ours(row) and not row.dataset.startswith("big")


def _big(row: Row) -> bool:
    return _ours(row) and row.dataset.startswith("big")


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


GOALS = [
    Goal(
        "≥3x scim2-server",
        lambda r: _small(r) and r.case in ("get", "eq", "patch"),
        lambda r: _at_least(r.vs_reference, 3),
    ),
    Goal(
        "≥100x scim2-server",
        lambda r: _small(r) and r.case in ("co", "sorted"),
        lambda r: _at_least(r.vs_reference, 100),
    ),
    Goal("p99 < 5 ms", lambda r: _big(r) and r.case == "eq", lambda r: r.p99 < 5),
    Goal("p99 < 50 ms", lambda r: _big(r) and r.case == "sorted", lambda r: r.p99 < 50),
    Goal("p50 < 50 ms", lambda r: _big(r) and r.case == "co", lambda r: r.p50 < 50),
    Goal(
        "p50 < 20 ms",
        lambda r: _ours(r) and r.case == "member" and r.org_users >= 100_000,
        lambda r: r.p50 < 20,
    ),
    Goal(
        "≥0.5x floor",
        lambda r: _ours(r) and r.case == "get" and r.dataset == "small-pg",
        lambda r: _at_least(r.vs_floor, 0.5),
    ),
]


def annotate(rows: list[Row]) -> list[dict[str, Any]]:
    """Fill in the ratios and goals of ``rows``; the RSS-flatness verdicts as extra entries."""
    reference = {r.case: r.rps for r in rows if r.target == REFERENCE}
    floors = {r.workers: r.rps for r in rows if r.target.startswith("floor") and r.case == "get"}
    for row in rows:
        if _ours(row):
            if reference.get(row.case):
                row.vs_reference = row.rps / reference[row.case]
            if floors.get(row.workers):
                # Every case against the floor's GET: how far from one bare query per request.
                row.vs_floor = row.rps / floors[row.workers]
        for goal in GOALS:
            if goal.applies(row):
                row.goal, row.met = goal.label, goal.check(row)
    verdicts = []
    for workers in sorted({r.workers for r in rows if _ours(r)}):
        big = [r.rss_worker_mib for r in rows if _big(r) and r.workers == workers]
        small = [
            r.rss_worker_mib
            for r in rows
            if _ours(r) and r.dataset == "small-pg" and r.workers == workers
        ]
        if small and big:
            ratio = max(big) / max(small)
            verdicts.append(
                {
                    "goal": f"RSS per worker flat in dataset size ({workers} worker(s))",
                    "value": f"{max(small):.0f} MiB small, {max(big):.0f} MiB big: x{ratio:.2f}",
                    "met": ratio <= 1.25,
                }
            )
    for row in rows:
        if row.goal:
            ratio = row.vs_floor if "floor" in row.goal else row.vs_reference
            if row.goal.startswith("p99"):
                shown = f"p99 {row.p99:.1f} ms"
            elif row.goal.startswith("p50"):
                shown = f"p50 {row.p50:.1f} ms"
            else:
                shown = "" if ratio is None else f"x{ratio:.2f}"
            verdicts.append(
                {
                    "goal": f"{row.case} {row.goal} ({row.target})",
                    "value": shown,
                    "met": row.met,
                }
            )
    return verdicts


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "MISSED")


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}" if value < 10 else f"{value:.0f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal too)."""
    header = (
        "| server | data | case | req/s | p50 ms | p99 ms | errors | RSS MiB (worker) "
        "| x scim2-server | x floor GET | target |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        rate = f"{r.rps:,.0f}"
        if r.units != r.rps:
            rate += f" ({r.units:,.0f} users/s)"
        goal = f"{r.goal}: {_verdict(r.met)}" if r.goal else ""
        lines.append(
            f"| {r.target} | {r.dataset} ({r.org_users:,}) | {r.case} | {rate} "
            f"| {r.p50:.1f} | {r.p99:.1f} | {r.errors} | {r.rss_mib:.0f} ({r.rss_worker_mib:.0f}) "
            f"| {_ratio(r.vs_reference)} | {_ratio(r.vs_floor)} | {goal} |"
        )
    return "\n".join(lines)


def verdicts_table(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| target | value | verdict |", "|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['goal']} | {v['value']} | {_verdict(v['met'])} |")
    return "\n".join(lines)
