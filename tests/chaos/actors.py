"""The chaos suite's in-process actors: the producer, a raw-stub worker that never heartbeats (and
acks some jobs only after their lease is over), and probes that time each replica's recovery.
Every answer other than OK is counted by actor, RPC and code."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.helpers import error_info
from tests.replicas.test_replicas import secs

QUEUE = "chaos"
T = TypeVar("T")
# Answers after which a call is sent again: the server or its database is away for a moment.
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass
class Codes:
    """Non-OK answers seen by the in-process actors: (actor, rpc, code) -> count."""

    seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    async def call(self, actor: str, rpc: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except grpc.aio.AioRpcError as err:
            self.seen[(actor, rpc, err.code().name)] += 1
            raise


def stubs(addresses: list[str]) -> list[QueueServiceStub]:
    return [QueueServiceStub(grpc.aio.insecure_channel(a)) for a in addresses]


async def produce(addresses: list[str], total: int, seconds: float, codes: Codes) -> float:
    """Enqueues `total` jobs spread over `seconds`, in batches to alternating replicas, each job
    under its own idempotency key (a retried batch that had landed adds nothing). Returns when done."""
    targets = stubs(addresses)
    batch, sent, turn = 50, 0, 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    backoff = job_pb2.BackoffPolicy(initial_interval=secs(0.2), max_interval=secs(2))
    while sent < total:
        await asyncio.sleep(max(0.0, start + sent * seconds / total - loop.time()))  # pacing, not syncing
        jobs = [
            qs.EnqueueRequest(
                queue=QUEUE,
                payload=json.dumps({"n": n, "ms": random.randint(5, 40)}).encode(),
                idempotency_key=f"chaos-{n}",
                max_attempts=100,
                backoff=backoff,
            )
            for n in range(sent, min(total, sent + batch))
        ]
        while True:
            turn += 1
            target = targets[turn % len(targets)]
            try:
                request = qs.EnqueueBatchRequest(jobs=jobs)
                await codes.call("producer", "EnqueueBatch", lambda t=target, r=request: t.EnqueueBatch(r, timeout=10))
                break
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRIED:
                    raise
                await asyncio.sleep(0.2)
        sent += len(jobs)
    return loop.time() - start


@dataclass
class LateAck:
    job_id: str
    lease_token: str
    answer: str  # "LEASE_LOST", or the code of an answer that is wrong


@dataclass
class Stub:
    """A raw-stub worker: leases with a short lease and never heartbeats; acks most jobs at once
    and a share of them only once their lease is over (each such ack must be refused)."""

    addresses: list[str]
    codes: Codes
    lease: float = 1.5
    late_share: float = 0.2
    late: list[LateAck] = field(default_factory=list)
    leased: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        targets = stubs(self.addresses)
        turn = 0
        while not stop.is_set():
            turn += 1
            target = targets[turn % len(targets)]
            request = qs.LeaseRequest(
                queues=[QUEUE], max_jobs=4, lease_duration=secs(self.lease), wait=secs(1), worker_id="stub"
            )
            try:
                got = await self.codes.call("stub", "Lease", lambda t=target, r=request: t.Lease(r, timeout=10))
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.2)
                continue
            for lj in got.jobs:
                self.leased += 1
                late = random.random() < self.late_share
                task = asyncio.create_task(self._finish(targets, lj, late))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=60)

    async def _finish(self, targets: list[QueueServiceStub], lj: qs.LeasedJob, late: bool) -> None:
        if late:  # hold it past its lease, by the same clock as the server's (one machine)
            expires = lj.lease_expires_at.ToDatetime().timestamp() if lj.HasField("lease_expires_at") else 0
            await asyncio.sleep(max(0.0, expires - time.time() + 0.3))
        result = json.dumps({"lease": lj.lease_token, "w": "stub-late" if late else "stub"}).encode()
        ack = qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token, result=result)
        for turn in range(1000):
            target = targets[turn % len(targets)]
            try:
                await self.codes.call("stub", "Ack", lambda t=target: t.Ack(ack, timeout=10))
                if late:
                    self.late.append(LateAck(lj.job.id, lj.lease_token, "OK"))
                return
            except grpc.aio.AioRpcError as err:
                if err.code() in RETRIED:
                    await asyncio.sleep(0.2)
                    continue
                if late:
                    self.late.append(LateAck(lj.job.id, lj.lease_token, _reason(err)))
                return


def _reason(err: grpc.aio.AioRpcError) -> str:
    try:
        return error_info(err).reason or err.code().name
    except AssertionError:
        return err.code().name


@dataclass
class Probe:
    """Asks each replica for one job every 0.2 s (a call that needs the database); keeps the times
    of OK answers, from which each fault's recovery is timed."""

    addresses: list[str]
    job_id: str
    codes: Codes
    ok: dict[str, list[float]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._one(address, stop) for address in self.addresses))

    async def _one(self, address: str, stop: asyncio.Event) -> None:
        times = self.ok.setdefault(address, [])
        (target,) = stubs([address])
        request = qs.GetJobRequest(job_id=self.job_id)
        while not stop.is_set():
            try:
                await self.codes.call("probe", "GetJob", lambda: target.GetJob(request, timeout=2))
                times.append(time.time())
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)

    def first_ok(self, address: str, after: float) -> float | None:
        return next((t for t in self.ok.get(address, []) if t >= after), None)


def load_lines(path: Any) -> list[dict[str, Any]]:
    """A worker's JSON lines; a line cut short by kill -9 is skipped."""
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
