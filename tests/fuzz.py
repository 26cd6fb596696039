"""The fuzz command: tens of thousands of hostile requests per database, and how many were
answered 5xx (0 expected).

    python -m tests.fuzz                  # SQLite and PostgreSQL, about 25,000 requests each
    python -m tests.fuzz --scale 4        # fewer; --scale 100 for a night
    python -m tests.fuzz --databases sqlite

It runs the property tests of ``tests/test_fuzz.py`` (filters and search parameters, PATCH
documents, Bulk requests, and what an attacker sends: made-up paths and cursors, deep
nesting, numbers no column holds, look-alike names, foreign digits) with ``--scale`` times
the examples CI runs and new random examples each time, once per database, and prints what
each sent and answered. Every response is checked as CI checks it: no 5xx, every error an
RFC 7644 error, a refused request changes nothing, the other organisation never changes.
A failing example is printed with the ``@reproduce_failure`` line that replays it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def run(database: str, scale: float, postgres: str) -> tuple[int, dict[str, object]]:
    """pytest's exit code and the report of one run of the fuzz properties."""
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "report.json"
        env = {
            **os.environ,
            "SCIM_FUZZ_EXAMPLES": str(scale),
            "SCIM_FUZZ_RANDOM": "1",
            "SCIM_FUZZ_REPORT": str(report),
        }
        env.pop("SCIM_TEST_DATABASE_URL", None)
        if database == "postgresql":
            env["SCIM_TEST_DATABASE_URL"] = postgres
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["tests/test_fuzz.py", "-x"]
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        summary = json.loads(report.read_text()) if report.exists() else {}
    return code, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--scale", type=float, default=25, help="times CI's examples")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=POSTGRES, help="a database the tests may use")
    args = parser.parse_args(argv)
    failed = False
    lines = []
    for database in args.databases.split(","):
        code, summary = run(database.strip(), args.scale, args.postgres)
        requests = summary.get("requests", 0)
        errors = summary.get("5xx", "?")
        lines.append(
            f"{database}: {requests} hostile requests, {errors} answered 5xx, "
            f"by status {summary.get('by_status', {})}"
            + ("" if code == 0 else f"; pytest exited {code} (a property failed, see above)")
        )
        failed |= code != 0 or errors != 0
    print("\n".join(["", "fuzz:", *lines]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
