"""`python -m tests.chaos [--long] [--jobs N] [--cycles N] [--dir DIR]`: the chaos suite, with its report.

The short form (5,000 jobs, one 60-second cycle of faults) is what `make chaos` and CI run; the long
form (--long, or SPOOL_CHAOS_LONG=1: 20,000 jobs, four cycles) runs on demand. Exit status 1 if any
check failed; the logs of every process stay in DIR (a temporary directory by default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tests.chaos.run import LONG, SHORT, run


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument("--long", action="store_true", default=os.environ.get("SPOOL_CHAOS_LONG") == "1")
    p.add_argument("--jobs", type=int)
    p.add_argument("--cycles", type=int)
    p.add_argument("--dir", type=Path)
    args = p.parse_args()
    form = LONG if args.long else SHORT
    form = replace(form, jobs=args.jobs or form.jobs, cycles=args.cycles or form.cycles)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="spool-chaos-"))
    verdict = asyncio.run(run(form, workdir))
    print(verdict.report)
    sys.exit(1 if verdict.failures else 0)


if __name__ == "__main__":
    main()
