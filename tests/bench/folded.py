"""Summarise a py-spy profile (``py-spy record -f raw``): the share of samples in each function,
inclusive and self, so that a profile can be read (and quoted) without a flame graph viewer.

    py-spy record -p PID -d 10 -r 250 -f raw -o get.folded
    python -m tests.bench.folded get.folded --top 40
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def _name(frame: str) -> str:
    """``function (path/to/file.py:line)`` as ``function (file.py:line)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rsplit('/', 1)[-1]}" if where else function


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.folded", description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    total, inclusive, own = summarise(args.profile)
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"-- {title}")
        for frame, samples in counter.most_common(args.top):
            print(f"{100 * samples / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
