"""Pickup latency: an idle consumer waits in Lease (wait=20 s, max_jobs=1); a producer enqueues one
job every 10 ms; each sample is the time from Enqueue returning to the Lease response arriving.

The same through the Python Worker library (concurrency 1): Enqueue returning -> handler starting.
The reference is the database's own pickup path with no gRPC: a LISTEN connection woken by the
same NOTIFY that insert_jobs sends, then spool.claim_slots, over asyncpg.

    python -m bench.latency [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import grpc
from google.protobuf import duration_pb2

from bench.drivers import PAYLOAD, Held, SqlDriver
from bench.report import table, target
from bench.scratch import QUEUE, run, scratch_database, spoold
from bench.worker import make_worker, tallied_logs
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc

SPACING = 0.010
WARMUP = 10  # the first pickups pay for connection set-up and statement preparation


class Samples:
    """Send and arrival times by job id; `complete` fires when every job has arrived."""

    def __init__(self, expected: int) -> None:
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.expected = expected
        self.complete = asyncio.Event()

    def arrive(self, job_id: str) -> None:
        self.arrived[job_id] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.complete.set()

    def latencies_ms(self) -> list[float]:
        ids = sorted(self.sent, key=self.sent.__getitem__)[WARMUP:]
        return [1000 * (self.arrived[i] - self.sent[i]) for i in ids if i in self.arrived]


async def produce(samples: Samples, enqueue: Callable[[], Awaitable[str]]) -> None:
    for _ in range(samples.expected):
        job_id = await enqueue()
        samples.sent[job_id] = time.perf_counter()
        await asyncio.sleep(SPACING)  # pacing the load, not synchronisation
    await asyncio.wait_for(samples.complete.wait(), 30)


async def grpc_latency(db_url: str, count: int) -> list[float]:
    samples = Samples(count)
    async with spoold(db_url) as server, grpc.aio.insecure_channel(server.target) as worker_channel:
        producer = server.stub()
        worker = queue_service_pb2_grpc.QueueServiceStub(worker_channel)
        wait = duration_pb2.Duration(seconds=20)
        lease = qs.LeaseRequest(queues=[QUEUE], max_jobs=1, wait=wait, worker_id="latency")

        async def consume() -> None:
            while True:
                reply = await worker.Lease(lease)
                for j in reply.jobs:
                    samples.arrive(j.job.id)
                    await worker.Ack(qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token))

        async def enqueue() -> str:
            reply = await producer.Enqueue(qs.EnqueueRequest(queue=QUEUE, payload=PAYLOAD))
            return str(reply.job.id)

        consumer = asyncio.create_task(consume())
        try:
            await produce(samples, enqueue)
        finally:
            consumer.cancel()
    return samples.latencies_ms()


async def worker_latency(db_url: str, count: int) -> list[float]:
    """The same, to the moment a spool.Worker (concurrency 1) starts the handler."""
    samples = Samples(count)
    async with spoold(db_url) as server:
        client, worker = make_worker(server, 1, lambda job: samples.arrive(job.id))
        serving = asyncio.create_task(worker.serve())
        producer = server.stub()

        async def enqueue() -> str:
            reply = await producer.Enqueue(qs.EnqueueRequest(queue=QUEUE, payload=PAYLOAD))
            return str(reply.job.id)

        try:
            with tallied_logs():
                await produce(samples, enqueue)
        finally:
            worker.stop()
            await serving
            await client.close()
    return samples.latencies_ms()


async def sql_latency(db_url: str, count: int) -> list[float]:
    samples = Samples(count)
    listen, claim, insert = [await asyncpg.connect(db_url) for _ in range(3)]
    woken = asyncio.Event()
    await listen.add_listener("spool_ready", lambda *_: woken.set())
    consumer_driver, producer_driver = SqlDriver(claim), SqlDriver(insert)

    async def consume() -> None:
        while True:
            woken.clear()
            held: list[Held] = await consumer_driver.claim(1)
            if not held:
                await woken.wait()
                continue
            samples.arrive(held[0][0])
            await consumer_driver.ack(held)

    async def enqueue() -> str:
        (job_id,) = await producer_driver.enqueue(1)
        return job_id

    consumer = asyncio.create_task(consume())
    try:
        await produce(samples, enqueue)
    finally:
        consumer.cancel()
        for c in (listen, claim, insert):
            await c.close()
    return samples.latencies_ms()


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(ms)}


async def main(quick: bool) -> None:
    count = 200 + WARMUP if quick else 1000 + WARMUP
    async with scratch_database() as url:
        ceiling = percentiles(await sql_latency(url, count))
        spool = percentiles(await grpc_latency(url, count))
        worker = percentiles(await worker_latency(url, count))
    goals = {"p50": 2.0, "p99": 10.0}
    rows = [
        (k, ceiling[k], spool[k], f"{spool[k] / ceiling[k]:.1f}x" if ceiling[k] > 0 else "-", worker[k], goals.get(k))
        for k in ceiling
    ]
    heading = f"pickup latency, ms ({count - WARMUP} jobs, {SPACING * 1000:.0f} ms apart, idle consumer)"
    headers = ("", "ceiling LISTEN+claim", "spool Lease(wait)", "spool/ceiling", "Worker handler start", "target")
    table(heading, headers, rows)
    for k, goal in goals.items():
        target(f"pickup latency {k} (Lease)", f"{spool[k]:.2f} ms", f"<= {goal:g} ms", spool[k] <= goal)
        target(f"pickup latency {k} (Worker handler)", f"{worker[k]:.2f} ms", f"<= {goal:g} ms", worker[k] <= goal)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200 jobs instead of 1000")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
