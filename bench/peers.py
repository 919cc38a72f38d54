"""Spool beside the queues a user would pick instead, PGQueuer and Procrastinate, in one run on the
same PostgreSQL: the same drain (N no-op jobs inserted beforehand, consumed by each library's own
worker) and the same pickup latency run (an idle worker; one job enqueued every 10 ms; enqueue
returning -> handler starting) as bench.throughput and bench.latency run for spool.Worker.

The peers run in a bench-only virtualenv (.bench-venv/, built here from
bench/peers-requirements.txt on first use) through bench/peers_driver.py, so their dependencies
never enter the project's environment. If that environment cannot be built, the benchmark says so
and is skipped.

    python -m bench.peers [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from bench import worker
from bench.cpu import Meter, Usage
from bench.latency import WARMUP, percentiles, worker_latency
from bench.report import table, target
from bench.scratch import fill, run, scratch_database, spoold
from bench.workloads import Result

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv"
REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")
DRIVER = Path(__file__).with_name("peers_driver.py")
PEERS = ("pgqueuer", "procrastinate")  # with the settings their docs give for throughput
DRAIN_PEERS = ("pgqueuer", "pgqueuer-batch100", "procrastinate")
# 10 as Procrastinate's worker; 100 is the Worker's batched path; 1000, the most one Lease call
# may ask for, is its fastest setting for short jobs, as batch_size 100 is PGQueuer's.
SPOOL_CONCURRENCY = (10, 100, 1000)
SETTINGS = {
    **{f"spool c={c}": f"spool.Worker, concurrency {c}" for c in SPOOL_CONCURRENCY},
    "pgqueuer": "asyncpg driver, 5 QueueManagers x batch_size 10",
    "pgqueuer-batch100": "asyncpg driver, 1 QueueManager x batch_size 100",
    "procrastinate": "PsycopgConnector, async task, concurrency 10",
}


def venv_python() -> Path | None:
    """The bench venv's interpreter, (re)built when peers-requirements.txt changes; None if it
    cannot be built (no network, no venv module), with the reason on stderr."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]}"
    if stamp.exists():
        return python
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
    ]
    print(f"  building {VENV.name}/ from {REQUIREMENTS.name} ...", flush=True)
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"  cannot build {VENV.name}/ ({' '.join(step[:3])}):\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
    stamp.touch()
    return python


async def peer(python: Path, name: str, mode: str, count: int) -> dict[str, Any]:
    """One driver run in its own scratch database (Spool's schema sits there unused); the driver
    installs its library's schema."""
    async with scratch_database() as url:
        process = await asyncio.create_subprocess_exec(
            str(python),
            str(DRIVER),
            name,
            mode,
            url,
            str(count),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"{name} {mode} exited with {process.returncode}:\n{err.decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def spool_drain(jobs: int, concurrency: int) -> tuple[Result, int]:
    async with scratch_database() as url, spoold(url) as server:
        admin = await asyncpg.connect(url)
        try:
            await fill(admin, jobs)
            meter = Meter(admin, server.pid)
            before = await meter.sample()
            with worker.tallied_logs():
                result, failed = await worker.drain(server, admin, jobs, concurrency)
            return replace(result, cpu=await meter.since(before)), failed
        finally:
            await admin.close()


ROUNDS = 2  # the second round runs in reverse order, so drift in the machine's load hits all alike
QUICK_ROUNDS = 1  # --quick keeps `python -m bench --quick` near its 2 minutes


async def drain_once(python: Path, who: str, jobs: int) -> tuple[Result, int]:
    """One drain of `jobs` jobs: (jobs that ended done, over the time taken; jobs that did not)."""
    if who.startswith("spool"):
        return await spool_drain(jobs, int(who.removeprefix("spool c=")))
    got = await peer(python, who, "drain", jobs)
    cpu = Usage(got["cpu_client"], None, got["cpu_database"])
    return Result(got["finished"], got["seconds"], cpu), jobs - got["finished"]


async def drains(python: Path, jobs: int, rounds: int) -> list[tuple[str, str, Result, int]]:
    """(who, settings, result, jobs that did not finish) for Spool's Worker and each peer, each
    summed over `rounds` drains of `jobs` jobs."""
    who = [*(f"spool c={c}" for c in SPOOL_CONCURRENCY), *DRAIN_PEERS]
    results: dict[str, list[tuple[Result, int]]] = {w: [] for w in who}
    for n in range(rounds):
        for w in who if n % 2 == 0 else who[::-1]:
            results[w].append(await drain_once(python, w, jobs))
    rows = []
    for w in who:
        (total, failed), *rest = results[w]
        for result, unfinished in rest:
            total, failed = total + result, failed + unfinished
        rows.append((w, SETTINGS[w], total, failed))
    return rows


async def latencies(python: Path, count: int) -> dict[str, dict[str, float]]:
    found = {}
    async with scratch_database() as url:
        found["spool"] = percentiles(await worker_latency(url, count))
    for name in PEERS:
        got = await peer(python, name, "latency", count)
        found[name] = percentiles(got["latencies_ms"][WARMUP:])
    return found


def cpu_ms(r: Result) -> str:
    return r.cpu.per_job_ms(r.jobs) if r.cpu else "-"


def report_drain(rows: Sequence[tuple[str, str, Result, int]], jobs: int, rounds: int) -> None:
    spool = max((r for r in rows if r[0].startswith("spool")), key=lambda r: r[2].rate)
    body = [
        (who, how, r.rate, f"{spool[2].rate / r.rate:.1f}x" if r.rate else "-", failed, cpu_ms(r))
        for who, how, r, failed in rows
    ]
    table(
        f"drain: {jobs:,} no-op jobs enqueued beforehand, {rounds} round(s)",
        ("", "settings", "jobs/s", "best spool / this", "unfinished", "CPU ms/job worker/spoold/pg"),
        body,
    )

    # The target names the settings the peers' docs give. The fastest setting measured, which no
    # doc gives, is printed beside it, so that a peer's easy win is never hidden.
    def against(names: Sequence[str]) -> tuple[float, str]:
        faster = max((r for r in rows if r[0] in names), key=lambda r: r[2].rate)
        ratio = spool[2].rate / faster[2].rate if faster[2].rate else 0.0
        return ratio, f"{ratio:.1f}x ({spool[0]} vs {faster[0]})"

    ratio, measured = against(PEERS)
    target("drain vs the faster peer, documented settings", measured, ">= 2x", ratio >= 2.0)
    print(f"  for comparison, drain vs the fastest peer setting measured: {against(DRAIN_PEERS)[1]}")


def report_latency(found: dict[str, dict[str, float]], count: int) -> None:
    rows = []
    for k in ("p50", "p95", "p99", "max"):
        best = min(found[p][k] for p in PEERS)
        rows.append((k, found["spool"][k], *(found[p][k] for p in PEERS), f"{found['spool'][k] / best:.2f}x"))
    headers = ("", "spool.Worker", *PEERS, "spool / lower peer")
    table(f"pickup latency, ms, enqueue returning -> handler start ({count - WARMUP} jobs, 10 ms apart)", headers, rows)


async def main(quick: bool, python: Path) -> None:
    jobs, rounds = (3_000, QUICK_ROUNDS) if quick else (20_000, ROUNDS)
    count = (100 if quick else 1000) + WARMUP
    report_drain(await drains(python, jobs, rounds), jobs, rounds)
    report_latency(await latencies(python, count), count)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="one round of 3,000 jobs and 100 pickups instead of two of 20,000 and 1,000",
    )
    quick = p.parse_args(argv).quick
    python = venv_python()  # before the event loop: pip takes a while and blocks
    if python is None:
        print("bench.peers: skipped, the bench venv with PGQueuer and Procrastinate could not be built")
        return
    run(main(quick, python))


if __name__ == "__main__":
    cli()
