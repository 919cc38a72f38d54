"""`python -m bench.rss [--pollers N] [--streams N]`: spoold's memory (VmRSS and its peak VmHWM, from
/proc) with many long-polling Lease calls and WatchJob streams open at once: at rest; with 200
Lease(wait=20 s) calls on idle queues, each re-issued as it returns; with 1,000 WatchJob streams
as well; and after a burst of enqueues that wakes every poller. Issue 7's target: <= 250 MB."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import grpc
from google.protobuf.duration_pb2 import Duration

from bench.report import table, target
from bench.scratch import run, scratch_database, spoold
from bench.watch import Watchers, enqueue
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

CHANNELS = 10  # callers spread over several HTTP/2 connections, as separate workers would be
POLLED_QUEUES = 20
GOAL_BYTES = 250_000_000
PAYLOAD = b'{"n": 1}'
BURST_PER_POLLER = 10  # each poller's max_jobs: the burst wakes every one of them at least once


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def async_stub(channel: grpc.aio.Channel) -> QueueServiceAsyncStub:
    return cast("QueueServiceAsyncStub", queue_service_pb2_grpc.QueueServiceStub(channel))  # type: ignore[redundant-cast]


class Pollers:
    """N workers each in Lease(wait=20 s, max_jobs=10), acking what they get and leasing again."""

    def __init__(self, stubs: Sequence[QueueServiceAsyncStub], count: int) -> None:
        self.issued = 0
        self.acked = 0
        self.changed = asyncio.Event()
        self.tasks = [asyncio.create_task(self._poll(stubs[i % len(stubs)], i)) for i in range(count)]

    async def _poll(self, stub: QueueServiceAsyncStub, n: int) -> None:
        queue = f"polled-{n % POLLED_QUEUES}"
        lease = qs.LeaseRequest(queues=[queue], max_jobs=10, wait=Duration(seconds=20), worker_id=f"poller-{n}")
        while True:
            call = stub.Lease(lease)
            self.issued += 1
            self.changed.set()
            reply = await call
            if reply.jobs:
                acks = [qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in reply.jobs]
                await stub.AckBatch(qs.AckBatchRequest(acks=acks))
                self.acked += len(acks)
                self.changed.set()

    async def _until(self, done: Callable[[], bool], within: float) -> None:
        deadline = time.perf_counter() + within
        while not done():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.perf_counter()))

    async def issued_at_least(self, calls: int, within: float = 10) -> None:
        await self._until(lambda: self.issued >= calls, within)

    async def until_acked(self, total: int, within: float = 60) -> None:
        await self._until(lambda: self.acked >= total, within)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def burst(stub: QueueServiceAsyncStub, per_queue: int) -> int:
    for q in range(POLLED_QUEUES):
        jobs = [qs.EnqueueRequest(queue=f"polled-{q}", payload=PAYLOAD)] * per_queue
        await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=jobs))
    return per_queue * POLLED_QUEUES


SETTLE = 3.0  # RSS is a level, not an event: a few seconds for the server to take in what was opened


async def bench(pollers: int, streams: int, full_wait: bool) -> list[tuple[str, int, int, str]]:
    rows: list[tuple[str, int, int, str]] = []
    async with scratch_database() as db_url, spoold(db_url) as server:
        channels = [grpc.aio.insecure_channel(server.target) for _ in range(CHANNELS)]
        stubs = [async_stub(c) for c in channels]
        stub = server.stub()
        await asyncio.sleep(SETTLE)
        rows.append(("at rest", *memory(server.pid), ""))

        polling = Pollers(stubs, pollers)
        await polling.issued_at_least(pollers)
        await asyncio.sleep(SETTLE)
        rows.append((f"{pollers} long polls (Lease wait=20 s)", *memory(server.pid), f"on {POLLED_QUEUES} idle queues"))

        ids = await enqueue(stub, streams, PAYLOAD)  # in bench.watch's queue, which nobody polls
        watchers = Watchers(stubs, ids)
        started = time.perf_counter()
        await watchers.first()
        opened = time.perf_counter() - started
        following = watchers.follow()
        await asyncio.sleep(SETTLE)
        rows.append((f"+ {streams} WatchJob streams", *memory(server.pid), f"streams opened in {opened:.1f} s"))

        if full_wait:
            await polling.issued_at_least(2 * pollers, within=30)
            await asyncio.sleep(SETTLE)
            rows.append(
                (
                    "both, after every poll timed out and was re-issued",
                    *memory(server.pid),
                    f"{polling.issued} Lease calls so far",
                )
            )

        started = time.perf_counter()
        total = await burst(stub, per_queue=BURST_PER_POLLER * pollers // POLLED_QUEUES)
        await polling.until_acked(total)
        drained = time.perf_counter() - started
        rows.append(
            (f"after a burst of {total} enqueues", *memory(server.pid), f"enqueued, leased, acked in {drained:.1f} s")
        )

        await polling.stop()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        for c in channels:
            await c.close()
    return rows


def report(pollers: int, streams: int, rows: Sequence[tuple[str, int, int, str]]) -> None:
    shown = [
        (phase, f"{rss / 1e6:.0f}", f"{rss / 2**20:.0f}", f"{hwm / 1e6:.0f}", note) for phase, rss, hwm, note in rows
    ]
    table(
        "spoold memory under long polls and WatchJob streams", ("phase", "VmRSS MB", "MiB", "peak MB", "notes"), shown
    )
    peak = max(hwm for _, _, hwm, _ in rows)
    target(
        f"server RSS, {pollers} long polls + {streams} WatchJob streams (peak)",
        f"{peak / 1e6:.0f} MB",
        f"<= {GOAL_BYTES / 1e6:.0f} MB",
        peak <= GOAL_BYTES,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.rss", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip the phase that waits out a full poll (20 s)")
    p.add_argument("--pollers", type=int, default=200)
    p.add_argument("--streams", type=int, default=1000)
    args = p.parse_args(argv)
    report(args.pollers, args.streams, run(bench(args.pollers, args.streams, not args.quick)))


if __name__ == "__main__":
    main()
