"""`python -m bench.cancel [--quick] [--jobs N]`: the time from CancelJob being called to the running
handler's cancellation, in a `spool.Worker` (spoold as a subprocess), p50/p99/max. Pushed through
WatchCancels, with a 30 s lease (heartbeats every 10 s, so none helps); then, for reference, the
same Worker with WatchCancels switched off, where the next heartbeat brings it (a 3 s lease: a
beat every second). The goal is under 1 s (issue 15, item 14)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

import spool
from bench.report import table
from bench.scratch import run, scratch_database, spoold

QUEUE = "cancelled"


async def _never() -> None:
    """Stands in for the WatchCancels watcher: cancellations wait for a heartbeat."""


async def measure(target: str, jobs: int, lease: timedelta, push: bool) -> list[float]:
    """Cancels `jobs` running jobs one at a time; seconds from calling CancelJob to the handler's cancellation."""
    started: asyncio.Queue[str] = asyncio.Queue()
    stopped: dict[str, float] = {}
    heard = asyncio.Event()
    async with spool.AsyncClient(target) as client:
        worker = spool.Worker(client, concurrency=4, lease_duration=lease, poll_wait=timedelta(seconds=2))
        if not push:
            worker._cancels.run = _never  # type: ignore[method-assign]  # the reference: heartbeats only

        @worker.handler(QUEUE)
        async def hold(job: spool.ActiveJob) -> None:
            started.put_nowait(job.id)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                stopped[job.id] = time.perf_counter()
                heard.set()
                raise

        await client.enqueue_many(QUEUE, [{} for _ in range(jobs)])
        serving = asyncio.create_task(worker.serve())
        latencies: list[float] = []
        try:
            for _ in range(jobs):
                job_id = await asyncio.wait_for(started.get(), 30)
                await asyncio.sleep(0.05)  # let the worker settle, as a real job would have run a while
                heard.clear()
                asked = time.perf_counter()
                await client.cancel(job_id)
                await asyncio.wait_for(heard.wait(), 30)
                latencies.append(stopped[job_id] - asked)
        finally:
            worker.stop()
            await asyncio.wait_for(serving, 60)
    return latencies


def _row(name: str, latencies: list[float]) -> tuple[str, int, str, str, str]:
    ms = sorted(x * 1000 for x in latencies)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) >= 2 else ms[0]
    return (name, len(ms), f"{statistics.median(ms):.1f}", f"{p99:.1f}", f"{ms[-1]:.1f}")


async def bench(jobs: int, reference_jobs: int) -> None:
    async with scratch_database() as db_url, spoold(db_url) as server:
        pushed = await measure(server.target, jobs, timedelta(seconds=30), push=True)
        polled = await measure(server.target, reference_jobs, timedelta(seconds=3), push=False)
    table(
        "CancelJob -> running handler cancelled (spool.Worker)",
        ("delivery", "jobs", "p50 ms", "p99 ms", "max ms"),
        [_row("WatchCancels (30 s lease)", pushed), _row("heartbeat only (3 s lease)", polled)],
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="50 jobs pushed, 5 by heartbeat")
    p.add_argument("--jobs", type=int, help="jobs cancelled through WatchCancels (default 300)")
    args = p.parse_args()
    jobs = args.jobs or (50 if args.quick else 300)
    run(bench(jobs, 5 if args.quick else 20))


if __name__ == "__main__":
    main()
