"""The Python Worker library (spool.Worker) as a load generator: it leases up to its free slots
with long poll and coalesces Acks into AckBatch, so its figures sit between the one-job-per-RPC
and the batched rows of the raw-stub benchmark. Used by throughput (drain) and latency (pickup)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import asyncpg

from bench.scratch import QUEUE, Server
from bench.workloads import Result
from spool import ActiveJob, AsyncClient, Worker

_UNFINISHED = "SELECT EXISTS (SELECT 1 FROM spool.jobs WHERE state IN ('pending', 'running'))"


class _Tally(logging.Handler):
    """Counts the Worker's log records by level instead of printing thousands of lines."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1


@contextlib.contextmanager
def tallied_logs() -> Iterator[Counter[str]]:
    log = logging.getLogger("spool.worker")
    tally = _Tally()
    log.addHandler(tally)
    log.propagate = False
    try:
        yield tally.counts
    finally:
        log.removeHandler(tally)
        log.propagate = True


def make_worker(server: Server, concurrency: int, on_job: Callable[[ActiveJob], None]) -> tuple[AsyncClient, Worker]:
    client = AsyncClient(server.target)
    worker = Worker(client, [QUEUE], concurrency=concurrency, poll_wait=timedelta(seconds=20), worker_id="bench")

    @worker.handler(QUEUE)
    async def no_op(job: ActiveJob) -> None:
        on_job(job)

    return client, worker


async def drain(server: Server, db: asyncpg.Connection, jobs: int, concurrency: int) -> tuple[Result, int]:
    """Runs a Worker until `jobs` pre-enqueued jobs are finished in the database; returns the
    SUCCEEDED ones as the result, and how many ended otherwise."""
    handled = asyncio.Event()
    count = 0

    def on_job(_job: ActiveJob) -> None:
        nonlocal count
        count += 1
        if count >= jobs:
            handled.set()

    client, worker = make_worker(server, concurrency, on_job)
    start = time.perf_counter()
    serving = asyncio.create_task(worker.serve())
    try:
        await asyncio.wait_for(handled.wait(), 300)
        # Acks travel in the background (AckBatch): a job is done when the database says so.
        while await db.fetchval(_UNFINISHED):  # noqa: ASYNC110 - the database is what we wait on
            await asyncio.sleep(0.01)  # polling the database: nothing else reports the last AckBatch
        seconds = time.perf_counter() - start
    finally:
        worker.stop()
        await serving
        await client.close()
    # Only jobs that ended SUCCEEDED count; any other end (a lease that expired first) is reported.
    succeeded = await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'")
    return Result(succeeded, seconds), jobs - succeeded
