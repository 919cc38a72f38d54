"""`python -m bench.longpoll [--quick] [--waiters N] [--queue-sets K] [--rate R] [--seconds S]`:
what idle Lease long polls cost everyone else. A producer enqueues R jobs/s (default 100, one
Enqueue per job) to a queue nobody waits on, while N long polls (default 3,000, Lease wait=60 s,
re-issued as they return) wait on K queue sets (default 30, two queues each) that get no job.
Three cases, each its own spoold on the same scratch database, in one run: no waiters; the
waiters with the per-waiter poll (SPOOL_LEASE_SHARED_POLL=0: each claims every poll interval, as
before the shared poll); the waiters with the shared poll (the default). Per case: Enqueue
p50/p99, PostgreSQL's committed transactions per second on the scratch database (pg_stat_database
deltas over the window), spoold's CPU and the load average at the end of the window.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import statistics
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import grpc

from bench.cpu import proc_cpu
from bench.drivers import GrpcDriver
from bench.report import table
from bench.scratch import reset, run, scratch_database, spoold
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.config import Settings

# Streams per channel: under spoold's cap per connection (SPOOL_GRPC_MAX_CONCURRENT_STREAMS).
STREAMS_PER_CHANNEL = Settings().grpc_max_concurrent_streams // 2
WAIT = 60.0
OPEN_AT_ONCE = 100


def p(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else float("nan")


async def waiter(stub: queue_service_pb2_grpc.QueueServiceStub, queues: list[str], errors: list[str]) -> None:
    req = qs.LeaseRequest(queues=queues, max_jobs=1, worker_id="idle")
    req.wait.FromSeconds(int(WAIT))
    while True:
        try:
            await stub.Lease(req, timeout=WAIT + 30)
        except grpc.aio.AioRpcError as exc:
            errors.append(f"Lease {exc.code().name}: {exc.details()}")
            await asyncio.sleep(1)  # a refused poll: back off as a worker would


async def hold(target: str, waiters: int, queue_sets: int) -> None:
    """The waiters, in a process of their own (so that their CPU never delays the producer's
    calls): prints "ready" once every Lease is sent, and on stdin's end the errors, then exits."""
    # A channel of its own connection each (channels to one target share one by default).
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(-(-waiters // STREAMS_PER_CHANNEL))]
    errors: list[str] = []
    tasks = []
    for i in range(waiters):
        stub = queue_service_pb2_grpc.QueueServiceStub(channels[i // STREAMS_PER_CHANNEL])
        k = i % queue_sets
        tasks.append(asyncio.create_task(waiter(stub, [f"idle-{k}-a", f"idle-{k}-b"], errors)))
        if i % OPEN_AT_ONCE == OPEN_AT_ONCE - 1:
            # Workers start over time: thousands of calls opened in one instant see some CANCELLED.
            await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps(collections.Counter(errors)), flush=True)
    os._exit(0)  # the open calls need no goodbye


@contextlib.asynccontextmanager
async def waiting(target: str, args: argparse.Namespace, waiters: int) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """The waiters' process while the block runs; yields a function that ends it and says its errors."""
    if not waiters:

        async def none() -> str:
            return "0"

        yield none
        return
    argv = ["-m", "bench.longpoll", "--hold", target, "--waiters", str(waiters), "--queue-sets", str(args.queue_sets)]
    child = await asyncio.create_subprocess_exec(sys.executable, *argv, stdin=PIPE, stdout=PIPE)
    assert child.stdin is not None and child.stdout is not None
    await child.stdout.readline()  # "ready"

    async def end() -> str:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        counted: dict[str, int] = json.loads(await child.stdout.readline() or b"{}")
        await child.wait()
        return ", ".join(f"{n} {e}" for e, n in counted.items()) or "0"

    try:
        yield end
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def produce(driver: GrpcDriver, rate: float, seconds: float, errors: list[str]) -> list[float]:
    """One Enqueue every 1/rate s (on a schedule, so a slow call does not lower the rate offered)."""
    latencies: list[float] = []
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + n / rate
        if due > now:
            await asyncio.sleep(due - now)  # the producer's schedule, not a synchronisation
        began = time.perf_counter()
        try:
            await driver.enqueue(1)
        except grpc.aio.AioRpcError as exc:
            errors.append(f"Enqueue {exc.code().name}")
        else:
            latencies.append((time.perf_counter() - began) * 1000)
        n += 1
    return latencies


async def commits(db: asyncpg.Connection) -> int:
    # The statistics a backend has not yet flushed are taken in; the snapshot is cleared each time.
    await db.execute("SELECT pg_stat_clear_snapshot()")
    found: int = await db.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return found


async def case(
    db_url: str, db: asyncpg.Connection, args: argparse.Namespace, waiters: int, shared: bool
) -> tuple[object, ...]:
    await reset(db)
    errors: list[str] = []
    async with (
        spoold(db_url, lease_shared_poll="1" if shared else "0") as server,
        waiting(server.target, args, waiters) as end,
    ):
        await asyncio.sleep(args.warmup)  # the waiters settle into their long polls
        driver = GrpcDriver(server.stub(), batched=False)
        xacts, cpu, began = await commits(db), proc_cpu(server.pid), time.perf_counter()
        latencies = await produce(driver, args.rate, args.seconds, errors)
        await asyncio.sleep(1)  # PostgreSQL flushes a backend's statistics about once a second
        elapsed = time.perf_counter() - began
        xact_rate = (await commits(db) - xacts) / elapsed
        spent = proc_cpu(server.pid)
        load = os.getloadavg()[0]
        lease_errors = await end()
    server_cpu = "-" if cpu is None or spent is None else f"{100 * (spent - cpu) / elapsed:.0f} %"
    name = "no waiters" if not waiters else f"{waiters} waiters, " + ("shared poll" if shared else "per-waiter poll")
    enqueue_errors = ", ".join(f"{n} {e}" for e, n in collections.Counter(errors).items()) or "0"
    return (
        name,
        len(latencies),
        p(latencies, 50),
        p(latencies, 99),
        f"{xact_rate:.0f}",
        server_cpu,
        f"{load:.2f}",
        enqueue_errors,
        lease_errors,
    )


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    async with scratch_database() as db_url:
        db = await asyncpg.connect(db_url)
        try:
            for waiters, shared in ((0, True), (args.waiters, False), (args.waiters, True)):
                rows.append(await case(db_url, db, args, waiters, shared))
                print(f"  {rows[-1][0]}: done", flush=True)
        finally:
            await db.close()
    table(
        f"Enqueue at {args.rate:g}/s beside idle long polls on {args.queue_sets} queue sets ({args.seconds:g} s each)",
        (
            "case",
            "enqueues",
            "p50 ms",
            "p99 ms",
            "xact_commit/s",
            "spoold CPU",
            "load avg 1m",
            "Enqueue errors",
            "Lease errors",
        ),
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.longpoll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 waiters, 8 s windows")
    parser.add_argument("--hold", metavar="TARGET", help=argparse.SUPPRESS)  # the waiters' own process
    parser.add_argument("--waiters", type=int, default=None, help="idle long polls (default 3000)")
    parser.add_argument("--queue-sets", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0, help="Enqueue calls per second")
    parser.add_argument("--seconds", type=float, default=None, help="the measuring window (default 30)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds for the waiters to settle (default 10)")
    args = parser.parse_args(argv)
    args.waiters = args.waiters or (300 if args.quick else 3000)
    args.seconds = args.seconds or (8.0 if args.quick else 30.0)
    args.warmup = args.warmup or (3.0 if args.quick else 10.0)
    run(hold(args.hold, args.waiters, args.queue_sets) if args.hold else main_async(args))


if __name__ == "__main__":
    main()
