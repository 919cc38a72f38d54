"""`python -m bench.soak [--minutes 10] [--clients 200] [--streams 1000] [--rate 50]`: spoold held
under a steady mixed load for a long time, to see that nothing drifts.

200 concurrent clients (by default 30% producers, 50% workers in Lease/AckBatch, 20% watchers that
follow one new job to its end, then the next) plus 1,000 WatchJob streams kept open on jobs that no
one runs. Reported per minute: p50/p99 of each RPC and spoold's RSS; then every answer other than
OK, by RPC and code (the goal: none), and the RSS growth over the last five minutes (the goal:
under 5 % once warmed up; with --minutes under 10, over the last half of the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration

from bench.report import table, target
from bench.rss import async_stub, memory
from bench.scratch import Server, run, scratch_database, spoold
from bench.watch import enqueue
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

T = TypeVar("T")
QUEUE = "soak"
CHANNELS = 10
PAYLOAD = b'{"soak": true}'


@dataclass
class Figures:
    """Latencies by (minute, rpc), answers other than OK by (rpc, code), RSS samples by minute."""

    start: float = field(default_factory=time.monotonic)
    latencies: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, bytes)
    recent: list[str] = field(default_factory=list)  # ids of jobs enqueued lately, for the watchers

    def minute(self) -> int:
        return int((time.monotonic() - self.start) // 60)

    late_watches: Counter[str] = field(default_factory=Counter)  # a watch past its deadline: the job's state
    stopped: bool = False  # calls cut short by the end of the run are not counted

    def error(self, rpc: str, code: grpc.StatusCode) -> None:
        if not self.stopped:
            self.errors[(rpc, code.name)] += 1

    async def call(self, rpc: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        began = time.monotonic()
        try:
            answer = await fn()
        except grpc.aio.AioRpcError as err:
            self.error(rpc, err.code())
            return None
        self.latencies[(self.minute(), rpc)].append(time.monotonic() - began)
        return answer


def _secs(n: float) -> Duration:
    d = Duration()
    d.FromMilliseconds(int(n * 1000))
    return d


async def producer(stub: QueueServiceAsyncStub, f: Figures, every: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(random.uniform(0, every))  # spread the producers over the period
    while not stop.is_set():
        began = time.monotonic()
        answer = await f.call("Enqueue", lambda: stub.Enqueue(qs.EnqueueRequest(queue=QUEUE, payload=PAYLOAD)))
        if answer is not None:
            f.recent.append(answer.job.id)
            del f.recent[:-500]
        await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))  # pacing: a steady rate


async def worker(stub: QueueServiceAsyncStub, f: Figures, n: int, stop: asyncio.Event) -> None:
    lease = qs.LeaseRequest(queues=[QUEUE], max_jobs=4, wait=_secs(5), worker_id=f"soak-{n}")
    while not stop.is_set():
        got = await f.call("Lease", lambda: stub.Lease(lease, timeout=30))
        if got is None:
            await asyncio.sleep(1)
            continue
        if got.jobs:
            acks = [qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token, result=b"{}") for j in got.jobs]
            await f.call("AckBatch", lambda a=acks: stub.AckBatch(qs.AckBatchRequest(acks=a), timeout=30))


async def watcher(stub: QueueServiceAsyncStub, f: Figures, stop: asyncio.Event) -> None:
    """Follows a newly enqueued job until it ends (WatchJob: time to the first message), then the next."""
    while not stop.is_set():
        if not f.recent:
            await asyncio.sleep(0.2)
            continue
        job_id = random.choice(f.recent[-50:])
        await f.call("GetJob", lambda j=job_id: stub.GetJob(qs.GetJobRequest(job_id=j), timeout=30))
        began, first = time.monotonic(), True
        call = stub.WatchJob(qs.WatchJobRequest(job_id=job_id), timeout=120)
        try:
            async for _ in call:
                if first:
                    f.latencies[(f.minute(), "WatchJob")].append(time.monotonic() - began)
                    first = False
        except grpc.aio.AioRpcError as err:
            f.error("WatchJob", err.code())
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # was the job still running, or was its end missed?
                job = await f.call("GetJob", lambda j=job_id: stub.GetJob(qs.GetJobRequest(job_id=j), timeout=30))
                state = job_pb2.Job.State.Name(job.job.state) if job is not None else "unknown"
                f.late_watches[state] += 1
        await asyncio.sleep(1)  # a watcher's pace: one job a second at most


async def held_stream(stub: QueueServiceAsyncStub, job_id: str, f: Figures, stop: asyncio.Event) -> None:
    """One of the long-lived streams, on a job no one runs; reopened if the server ends it."""
    while not stop.is_set():
        call = stub.WatchJob(qs.WatchJobRequest(job_id=job_id))
        try:
            while True:
                reading = asyncio.ensure_future(call.read())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait((reading, stopping), return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if stop.is_set():
                    call.cancel()
                    reading.cancel()
                    return
                if reading.result() is grpc.aio.EOF:
                    f.error("WatchJob (held)", grpc.StatusCode.OK)  # ended with no error: it should not
                    break
        except grpc.aio.AioRpcError as err:
            f.error("WatchJob (held)", err.code())


async def sample_rss(pid: int, f: Figures, stop: asyncio.Event) -> None:
    while not stop.is_set():
        f.rss.append((time.monotonic() - f.start, memory(pid)[0]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


@dataclass(frozen=True)
class Plan:
    minutes: float
    clients: int
    streams: int
    rate: float  # jobs enqueued per second, over all producers


async def soak(plan: Plan, server: Server) -> Figures:
    channels = [grpc.aio.insecure_channel(server.target) for _ in range(CHANNELS)]
    stubs = [async_stub(c) for c in channels]
    f, stop = Figures(), asyncio.Event()
    producers = max(1, plan.clients * 3 // 10)
    watchers = max(1, plan.clients // 5)
    workers = max(1, plan.clients - producers - watchers)
    held = await enqueue(stubs[0], plan.streams, PAYLOAD)  # in a queue no worker here takes
    tasks = [asyncio.create_task(held_stream(stubs[i % CHANNELS], j, f, stop)) for i, j in enumerate(held)]
    every = producers / plan.rate
    tasks += [asyncio.create_task(producer(stubs[i % CHANNELS], f, every, stop)) for i in range(producers)]
    tasks += [asyncio.create_task(worker(stubs[i % CHANNELS], f, i, stop)) for i in range(workers)]
    tasks += [asyncio.create_task(watcher(stubs[i % CHANNELS], f, stop)) for i in range(watchers)]
    tasks.append(asyncio.create_task(sample_rss(server.pid, f, stop)))
    print(
        f"soak: {producers} producers ({plan.rate:g} jobs/s), {workers} workers, {watchers} watchers, "
        f"{plan.streams} held WatchJob streams, {plan.minutes:g} min",
        flush=True,
    )
    f.start = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), plan.minutes * 60)
    f.stopped = True
    stop.set()
    await asyncio.wait(tasks, timeout=40)
    for c in channels:
        await c.close()
    return f


def _ms(values: Sequence[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]:.1f}"


def report(plan: Plan, f: Figures) -> bool:
    rpcs = ["Enqueue", "Lease", "AckBatch", "GetJob", "WatchJob"]
    by_minute: dict[int, list[int]] = defaultdict(list)
    for t, v in f.rss:
        by_minute[int(t // 60)].append(v)
    # Calls that end after the run (long polls answered at the stop) are left out.
    minutes = [m for m in sorted({m for m, _ in f.latencies} | set(by_minute)) if m < math.ceil(plan.minutes)]
    rows: list[list[Any]] = []
    for m in minutes:
        row: list[Any] = [m + 1]
        for rpc in rpcs:
            values = f.latencies.get((m, rpc), [])
            row.append(f"{_ms(values, 0.5)}/{_ms(values, 0.99)} ({len(values)})")
        rss = by_minute.get(m)
        row.append(f"{statistics.mean(rss) / 2**20:.1f}" if rss else "-")
        rows.append(row)
    table("per minute: p50/p99 ms (calls); Lease is a long poll of up to 5 s", ["min", *rpcs, "RSS MiB"], rows)
    errors = [[rpc, code, n] for (rpc, code), n in sorted(f.errors.items())]
    table("answers other than OK", ["rpc", "code", "count"], errors or [["-", "none", 0]])
    if f.late_watches:
        print(f"  watches past their deadline, by the job's state then: {dict(f.late_watches)}")
    window = min(5.0, plan.minutes / 2)
    last = [v for t, v in f.rss if t >= (plan.minutes - window) * 60]
    growth = 100 * (last[-1] - last[0]) / last[0] if len(last) > 1 else 0.0
    flat = target(
        f"spoold RSS growth over the last {window:g} min",
        f"{growth:+.1f}% ({last[0] / 2**20:.0f} -> {last[-1] / 2**20:.0f} MiB)" if last else "no samples",
        "under 5%",
        bool(last) and growth < 5,
    )
    clean = target("unexpected answers", str(sum(f.errors.values())), "0", not f.errors)
    return flat.met and clean.met


async def main_async(plan: Plan) -> bool:
    async with scratch_database() as db_url, spoold(db_url, POOL_MAX_SIZE="32") as server:
        return report(plan, await soak(plan, server))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--rate", type=float, default=50, help="jobs enqueued per second, over all producers")
    args = p.parse_args(argv)
    ok = run(main_async(Plan(args.minutes, args.clients, args.streams, args.rate)))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
