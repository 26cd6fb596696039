"""The results table: figures per server and case, ratios to scim2-server and to the floor,
and the issue's targets judged met or missed (reported, never asserted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    # Each round's requests per second, in the order run (``median``); one round: empty.
    rounds: list[float] = field(default_factory=list)
    vs_reference: float | None = None
    vs_floor: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)


def median(rounds: list[Row]) -> Row:
    """The round of median throughput (of an even number, the higher of the middle two),
    with every round's rate beside it and the errors of all: an error in any round counts."""
    if len(rounds) == 1:
        return rounds[0]
    middle = sorted(rounds, key=lambda row: row.rps)[len(rounds) // 2]
    return replace(
        middle,
        rounds=[row.rps for row in rounds],
        errors=sum(row.errors for row in rounds),
        rss_mib=max(row.rss_mib for row in rounds),
        rss_worker_mib=max(row.rss_worker_mib for row in rounds),
    )


# Rows by (server, case): goals that compare one server with another look them up here.
Index = dict[tuple[str, str], Row]


@dataclass(frozen=True)
class Goal:
    """A target of the issue on some rows: what it says, and whether a row meets it (None:
    the row it is compared with was not run)."""

    label: str
    applies: Callable[[Row], bool]
    check: Callable[[Row, Index], bool | None]


def _ours(row: Row) -> bool:
    return row.target.startswith("scim-")


def _big(row: Row) -> bool:
    return _ours(row) and row.dataset.startswith("big")


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _versus(row: Row, index: Index, other: str) -> float | None:
    """This row's throughput over that of server ``other`` in the same case."""
    compared = index.get((other, row.case))
    return row.rps / compared.rps if compared and compared.rps else None


READS = ("get", "eq", "co", "sorted")

# The targets of #17, on the rows they name.
GOALS = [
    Goal(
        "≥2x scim2-server",
        lambda r: r.target == "scim-pg-1w" and r.case in ("get", "eq", "patch", "post"),
        lambda r, _: _at_least(r.vs_reference, 2),
    ),
    Goal(
        "≥0.8x of 20,000 users",
        lambda r: r.target == "scim-big-1w" and r.case in READS,
        lambda r, index: _at_least(_versus(r, index, "scim-pg-1w"), 0.8),
    ),
    Goal(
        "≥0.7x PostgreSQL",
        lambda r: r.target == "scim-sqlite-1w" and r.case in READS,
        lambda r, index: _at_least(_versus(r, index, "scim-pg-1w"), 0.7),
    ),
    Goal("p50 < 50 ms", lambda r: _big(r) and r.case == "co", lambda r, _: r.p50 < 50),
    Goal("p99 < 50 ms", lambda r: _big(r) and r.case == "sorted", lambda r, _: r.p99 < 50),
    Goal("p50 < 2 ms", lambda r: _big(r) and r.case == "eq1", lambda r, _: r.p50 < 2),
    Goal(
        "p50 < 20 ms",
        lambda r: _ours(r) and r.case == "member" and r.org_users >= 100_000,
        lambda r, _: r.p50 < 20,
    ),
    Goal(
        "≥0.5x floor",
        lambda r: r.target == "scim-pg-1w" and r.case == "get",
        lambda r, _: _at_least(r.vs_floor, 0.5),
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
    index = {(r.target, r.case): r for r in rows}
    judged: list[tuple[Row, str, bool | None]] = []
    for row in rows:
        goals = [(goal.label, goal.check(row, index)) for goal in GOALS if goal.applies(row)]
        judged.extend((row, label, met) for label, met in goals)
        row.goal = "; ".join(f"{label}: {_verdict(met)}" for label, met in goals)
        verdicts_of_row = [met for _, met in goals]
        row.met = None if None in verdicts_of_row else all(verdicts_of_row) if goals else None
    verdicts = []
    failed = [f"{r.target} {r.case}: {r.errors}" for r in rows if _ours(r) and r.errors]
    verdicts.append(
        {
            "goal": "No errors in any case",
            "value": "; ".join(failed) or "0 errors",
            "met": not failed,
        }
    )
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
    for row, label, met in judged:
        compared = row.vs_floor if "floor" in label else row.vs_reference
        if "users" in label or "PostgreSQL" in label:
            compared = _versus(row, index, "scim-pg-1w")
        if label.startswith("p99"):
            shown = f"p99 {row.p99:.1f} ms"
        elif label.startswith("p50"):
            shown = f"p50 {row.p50:.1f} ms"
        else:
            shown = "" if compared is None else f"x{compared:.2f}"
        verdicts.append({"goal": f"{row.case} {label} ({row.target})", "value": shown, "met": met})
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
        if r.rounds:
            rate += f" [{min(r.rounds):,.0f}–{max(r.rounds):,.0f}]"
        lines.append(
            f"| {r.target} | {r.dataset} ({r.org_users:,}) | {r.case} | {rate} "
            f"| {r.p50:.1f} | {r.p99:.1f} | {r.errors} | {r.rss_mib:.0f} ({r.rss_worker_mib:.0f}) "
            f"| {_ratio(r.vs_reference)} | {_ratio(r.vs_floor)} | {r.goal} |"
        )
    return "\n".join(lines)


def verdicts_table(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| target | value | verdict |", "|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['goal']} | {v['value']} | {_verdict(v['met'])} |")
    return "\n".join(lines)
