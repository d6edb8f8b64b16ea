"""Run every benchmark and print one table: ``python -m bench [--quick] [--only NAME ...]``.

Figures are medians (or percentiles) measured side by side in one run; on a shared machine, run it
twice and distrust a figure that moved. ``--quick`` is a smoke run (fewer samples, 50 concurrent
generations instead of 200): its figures are indicative only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import app, concurrency, context, embedded, overhead, progress, replicas, simulator, startup, store
from bench.common import Row, say

SUITES = {
    "overhead": overhead,
    "progress": progress,
    "concurrency": concurrency,
    "context": context,
    "startup": startup,
    "store": store,
    "app": app,
    "replicas": replicas,
    "embedded": embedded,
    "simulator": simulator,
}


def table(rows: list[Row]) -> str:
    head = ("metric", "figure", "target", "")
    cells = [head] + [(r.metric, r.figure, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run; figures indicative only")
    parser.add_argument("--only", nargs="+", choices=list(SUITES), help="run only these")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        rows += suite.run(args.quick)
        say()
    say(
        f"mj-mcp benchmarks ({'quick' if args.quick else 'full'} run, {time.perf_counter() - t0:.0f} s, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})"
    )
    say(table(rows))
    return 1 if any(r.ok is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
