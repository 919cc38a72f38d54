"""`python -m bench [--quick] [--only NAME ...]`: every benchmark, each in its own process (so one
benchmark's connections, caches and event loop never colour the next), then the targets.

Benchmarks added by other modules of this package (search, watch, peers) are included when present.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from bench.report import read_targets, table

# In running order; the first three are always here, the others only once someone has written them.
BENCHMARKS = (
    "throughput",
    "latency",
    "backlog",
    "search",
    "watch",
    "auth",
    "http",
    "peers",
    "rss",
    "sustained",
    "listing",
    "mixed",
)
# Too long for the 2-minute budget of --quick even in their own quick form (run them by --only).
FULL_ONLY = ("auth", "sustained", "listing", "mixed")


def available(names: Sequence[str]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(f"bench.{n}") is not None]


def run_one(name: str, quick: bool, results: str) -> int:
    print(f"\n######## bench.{name}{' --quick' if quick else ''}", flush=True)
    env = {**os.environ, "SPOOL_BENCH_RESULTS": results}
    command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    started = time.perf_counter()
    code = subprocess.call(command, env=env)
    print(f"  (bench.{name}: {time.perf_counter() - started:.0f} s, exit {code})", flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a run under 2 minutes: smaller cases, fewer levels")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these (repeatable)")
    args = p.parse_args(argv)
    names = available(args.only or [n for n in BENCHMARKS if not (args.quick and n in FULL_ONLY)])
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmp:
        results = os.path.join(tmp, "targets.jsonl")
        failed = [n for n in names if run_one(n, args.quick, results) != 0]
        targets = read_targets(results)
    rows = [(t.name, t.measured, t.goal, "met" if t.met else "MISSED") for t in targets]
    table("targets (issue 7)", ("target", "measured", "goal", ""), rows)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
