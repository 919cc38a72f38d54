"""Profile spoold under one workload: py-spy samples the server process while the load generator
runs a steady produce+consume loop (or a drain) through gRPC; prints where spoold's samples fall.

    pip install py-spy==0.4.3      (not a project dependency: a tool for this command only)
    python -m bench.profile [--workload steady|drain] [--batch 1|100] [--clients 8] [--seconds 10]
        [--output spoold-profile.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from bench import workloads
from bench.report import table
from bench.scratch import fill, run, scratch_database, spoold
from bench.throughput import grpc_drivers


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy==0.4.3")
    return found


async def main(workload: str, batch: int, clients: int, seconds: float, out: Path, native: bool) -> None:
    async with scratch_database() as url, spoold(url) as server:
        if workload == "drain":
            conn = await asyncpg.connect(url)
            await fill(conn, 200_000 if batch > 1 else 20_000)
            await conn.close()
        spy_args = ["record", "--pid", str(server.pid), "--duration", str(int(seconds)), "--format", "raw"]
        # Native frames need the process paused per sample; Python-only sampling need not pause it.
        spy_args += ["--output", str(out), *(["--native"] if native else ["--nonblocking"])]
        spy = await asyncio.create_subprocess_exec(py_spy(), *spy_args, stdout=asyncio.subprocess.DEVNULL)
        async with grpc_drivers(server, batch > 1, clients) as drivers:
            if workload == "drain":
                result = await workloads.drain(drivers, batch)
            else:
                result = await workloads.steady(drivers, batch, seconds)
        if await spy.wait() != 0:
            raise SystemExit("py-spy failed (is ptrace allowed here?)")
    print(
        f"{workload} batch {batch} x{clients}: {result.jobs} jobs in {result.seconds:.1f} s = {result.rate:,.0f} jobs/s"
    )
    summarise(out)
    print(f"collapsed stacks (for speedscope or inferno): {out}")


def summarise(stacks: Path, top: int = 30) -> None:
    """Share of samples in which each function is on the stack (inclusive) and on top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames_text, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_short(f) for f in frames_text.split(";") if f]
        total += count
        for f in set(frames):
            inclusive[f] += count
        if frames:
            own[frames[-1]] += count
    rows = [(f, 100 * n / total, 100 * own[f] / total) for f, n in inclusive.most_common(top)]
    table(f"spoold samples: {total}", ("function", "incl %", "self %"), rows)
    rows = [(f, 100 * inclusive[f] / total, 100 * n / total) for f, n in own.most_common(top)]
    table("by self time", ("function", "incl %", "self %"), rows)


def _short(frame: str) -> str:
    # py-spy frames read "function (path/to/file.py:line)"; the line number splits one function's samples.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "server/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=("steady", "drain"), default="steady")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--native", action="store_true", help="include C frames (gRPC core, uvloop, asyncpg protocol)")
    p.add_argument("--output", type=Path, default=Path("spoold-profile.txt"), help="collapsed stacks file")
    args = p.parse_args(argv)
    run(main(args.workload, args.batch, args.clients, args.seconds, args.output, args.native))


if __name__ == "__main__":
    cli()
