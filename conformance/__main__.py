"""``python -m conformance URL``: run scim2-tester against a live server; exit 1 unless all pass."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conformance.check import PASSING, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance")
    parser.add_argument(
        "url", help="base URL of the SCIM service, e.g. http://127.0.0.1:8000/scim/v2"
    )
    parser.add_argument("--token", help="bearer token to send")
    parser.add_argument(
        "--verbose", action="store_true", help="print every check, not only failures"
    )
    args = parser.parse_args(argv)
    results = run(args.url, token=args.token)
    failures = [result for result in results if result.status not in PASSING]
    for result in results if args.verbose else failures:
        kind = result.resource_type or "-"
        print(f"{result.status.name:<10} {kind:<8} {result.title}: {result.reason}")
    print(f"{len(results) - len(failures)} of {len(results)} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
