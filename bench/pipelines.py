"""Pipelines against plain jobs through the same Workers, in one run: N pipelines of 4 chained steps
(extract -> transform -> enrich -> notify, each step reading its parent's result) against 4N plain
jobs, drained by one spool.Worker (concurrency 100) on one spoold; then a 1,000-wide fan-out and
its join against 1,002 plain jobs. The goal (issue 22): a step costs at most 1.5x a plain job.

    python -m bench.pipelines            # 10,000 pipelines / 40,000 jobs
    python -m bench.pipelines --quick    # 1,000 / 4,000

Jobs and pipelines are created before the clock starts (their creation rates are printed apart),
and the database is vacuumed, analyzed and checkpointed before each drain, so each side starts
from the same state; the timed part is the drain, from the Worker's start until the database has
nothing unfinished. The chains are drained in ROUNDS rounds of a share each, the two sides in
alternating order (plain first, then steps first, ...), so a change in the machine's load during
the run falls on both sides alike; the totals over the rounds give the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from bench.scratch import QUEUE, Server, run, scratch_database, settle, spoold, throwaway_postgres
from spool import ActiveJob, AsyncClient, Worker, step
from spool.pipelines import Step

_UNFINISHED = "SELECT EXISTS (SELECT 1 FROM spool.jobs WHERE state IN ('pending', 'running', 'waiting'))"
CONCURRENCY = 100
ROUNDS = 4


async def _create(client: AsyncClient, count: int, steps: Sequence[Step], callers: int = 16) -> float:
    """Creates `count` pipelines of these steps from `callers` concurrent callers; seconds taken."""
    left = iter(range(count))

    async def caller() -> None:
        for _ in left:
            await client.pipeline("bench", steps)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.perf_counter() - start


async def _enqueue(client: AsyncClient, count: int) -> float:
    start = time.perf_counter()
    for first in range(0, count, 1000):
        await client.enqueue_many(QUEUE, [{"n": i} for i in range(first, min(count, first + 1000))])
    return time.perf_counter() - start


async def _drain(server: Server, db: asyncpg.Connection) -> float:
    """Seconds for one Worker to finish everything; each handler returns its parents' results summed + 1."""
    client = AsyncClient(server.target)
    worker = Worker(client, [QUEUE], concurrency=CONCURRENCY, poll_wait=timedelta(seconds=1), worker_id="bench")

    @worker.handler(QUEUE)
    async def handle(job: ActiveJob) -> int:
        return sum(int(v) for v in job.parents.values()) + 1

    start = time.perf_counter()
    serving = asyncio.create_task(worker.serve())
    try:
        while await db.fetchval(_UNFINISHED):  # noqa: ASYNC110 - the database is what we wait on
            await asyncio.sleep(0.02)
        return time.perf_counter() - start
    finally:
        worker.stop()
        await serving
        await client.close()


async def reset(db: asyncpg.Connection) -> None:
    """Empties the job tables between cases (with what references them: attempts, their logs)."""
    await db.execute("TRUNCATE spool.jobs, spool.pipelines CASCADE")
    await settle(db)


def _line(label: str, items: int, seconds: float, per: str) -> str:
    rate, each = items / seconds, seconds / items * 1e6
    return f"  {label:<34} {items:>7,} {per} in {seconds:7.2f} s = {rate:8,.0f}/s, {each:7.0f} us each"


async def chains(server: Server, db: asyncpg.Connection, client: AsyncClient, pipelines: int) -> float:
    jobs = pipelines * 4
    share = pipelines // ROUNDS
    chain = [step("extract", QUEUE), *(step(n, QUEUE, after=[p]) for p, n in _PAIRS)]
    totals = {"made": 0.0, "plain": 0.0, "created": 0.0, "steps": 0.0}
    for n in range(ROUNDS):
        for side in ("plain", "steps") if n % 2 == 0 else ("steps", "plain"):
            if side == "plain":
                totals["made"] += await _enqueue(client, share * 4)
            else:
                totals["created"] += await _create(client, share, chain)
            await settle(db)
            took = await _drain(server, db)
            totals[side] += took
            await reset(db)
        print(f"  round {n + 1}: plain {totals['plain']:6.2f} s, steps {totals['steps']:6.2f} s so far")
    print(_line("plain jobs: EnqueueBatch of 1,000", jobs, totals["made"], "jobs "))
    print(_line("plain jobs: drained", jobs, totals["plain"], "jobs "))
    print(_line("pipelines of 4: EnqueuePipeline", pipelines, totals["created"], "pipes"))
    print(_line("pipeline steps: drained", jobs, totals["steps"], "steps"))
    ratio = totals["steps"] / totals["plain"]
    print(f"  a step costs {ratio:.2f}x a plain job in the drain (goal: at most 1.5x)")
    return ratio


_PAIRS = (("extract", "transform"), ("transform", "enrich"), ("enrich", "notify"))


async def fan_out(server: Server, db: asyncpg.Connection, client: AsyncClient, width: int) -> float:
    """ROUNDS fan-outs and their joins against as many plain jobs each, in alternating order."""
    parts = [step(f"part{i}", QUEUE, after=["split"]) for i in range(width)]
    fan = [step("split", QUEUE), *parts, step("join", QUEUE, after=[p.name for p in parts])]
    totals = {"plain": 0.0, "fan": 0.0}
    for n in range(ROUNDS):
        for side in ("plain", "fan") if n % 2 == 0 else ("fan", "plain"):
            if side == "plain":
                await _enqueue(client, width + 2)
            else:
                await client.pipeline("fan", fan)
            await settle(db)
            totals[side] += await _drain(server, db)
            if side == "fan":
                joined = await db.fetchval("SELECT result FROM spool.jobs WHERE step_name = 'join'")
                assert joined == str(width * 2 + 1).encode(), joined
            await reset(db)
    items = (width + 2) * ROUNDS
    print(_line(f"plain jobs: {ROUNDS} x {width + 2:,} drained", items, totals["plain"], "jobs "))
    print(_line(f"{ROUNDS} fan-outs of {width:,} + join: drained", items, totals["fan"], "steps"))
    ratio = totals["fan"] / totals["plain"]
    print(f"  the fan-out and join cost {ratio:.2f}x as many plain jobs (each join ran once with {width:,} results)")
    return ratio


async def main(quick: bool, own: bool) -> None:
    if own:
        with throwaway_postgres() as pg:
            await _main(quick, pg)
    else:
        await _main(quick, None)


async def _main(quick: bool, pg: str | None) -> None:
    pipelines = 1000 if quick else 10_000
    async with scratch_database(pg) as url, spoold(url) as server:
        db = await asyncpg.connect(url)
        client = AsyncClient(server.target)
        try:
            print(f"bench.pipelines: {pipelines:,} pipelines of 4 steps against {pipelines * 4:,} plain jobs")
            print(f"  in {ROUNDS} alternating rounds of {pipelines // ROUNDS:,} pipelines and {pipelines:,} jobs")
            print("  load average at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            await chains(server, db, client, pipelines)
            print("bench.pipelines: a 1,000-wide fan-out and its join")
            await fan_out(server, db, client, 1000)
            print("  load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        finally:
            await client.close()
            await db.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.pipelines", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 pipelines instead of 10,000")
    p.add_argument(
        "--own-postgres",
        action="store_true",
        help="a throwaway embedded PostgreSQL instead of SPOOL_BENCH_DATABASE_URL",
    )
    args = p.parse_args()
    run(main(args.quick, args.own_postgres))
