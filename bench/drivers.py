"""Two ways to move a job through its life: Spool's own SQL over asyncpg (the ceiling), and the
gRPC API with raw stubs. Both offer enqueue / claim / ack, so every workload runs on either."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import asyncpg

from bench.scratch import QUEUE
from spool.v1 import queue_service_pb2 as qs
from spoold.model import JobDefaults, NewJob
from spoold.store import jobs as store_jobs
from spoold.store import queries

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

Q = queries.load("jobs.sql")
PAYLOAD = json.dumps({"n": 1}).encode()
Held = tuple[str, str]  # (job id, lease token), as the API carries them


class Driver(Protocol):
    async def enqueue(self, count: int) -> list[str]: ...
    async def claim(self, count: int) -> list[Held]: ...
    async def ack(self, held: Sequence[Held]) -> None: ...
    async def ack_then_claim(self, held: Sequence[Held], count: int) -> list[Held]: ...


def _insert_args(count: int) -> list[object]:
    """insert_jobs' parameters for `count` default no-op jobs, built by the store's own helpers so
    the ceiling sends exactly what spoold sends for an Enqueue with no options."""
    new = [NewJob(queue=QUEUE, payload=PAYLOAD)] * count
    return [*store_jobs._columns(new), *store_jobs._server_defaults(JobDefaults())]


class SqlDriver:
    """The ceiling: the statements spoold runs, each in its own transaction, no gRPC and no conversion."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._args: dict[int, list[object]] = {}

    async def enqueue(self, count: int) -> list[str]:
        args = self._args.get(count) or self._args.setdefault(count, _insert_args(count))
        return [str(r["id"]) for r in await self.conn.fetch(Q["insert_jobs"], *args)]

    async def claim(self, count: int) -> list[Held]:
        rows = await self.conn.fetch(Q["claim_slots"], [QUEUE], ["bench"] * count, [None] * count)
        return [(str(r["id"]), str(r["lease_token"])) for r in rows]

    async def ack(self, held: Sequence[Held]) -> None:
        # The query spoold runs for this shape: Ack returns the finished job, AckBatch only ids.
        query = Q["ack_many"] if len(held) == 1 else Q["ack_many_ids"]
        none: list[None] = [None] * len(held)
        await self.conn.fetch(query, [int(i) for i, _ in held], [int(t) for _, t in held], none, none)

    async def ack_then_claim(self, held: Sequence[Held], count: int) -> list[Held]:
        """What spoold runs for an Ack with `next`: the ack, then the claim, each its own transaction."""
        await self.ack(held)
        return await self.claim(count)


class GrpcDriver:
    """Spool through the API: one job per RPC (Enqueue, Lease max_jobs=1, Ack) or the batch RPCs."""

    def __init__(self, stub: QueueServiceAsyncStub, batched: bool) -> None:
        self.stub = stub
        self.batched = batched
        self._one = qs.EnqueueRequest(queue=QUEUE, payload=PAYLOAD)

    async def enqueue(self, count: int) -> list[str]:
        if self.batched:
            reply = await self.stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[self._one] * count))
            return [r.job.id for r in reply.results]
        return [(await self.stub.Enqueue(self._one)).job.id for _ in range(count)]

    async def claim(self, count: int) -> list[Held]:
        reply = await self.stub.Lease(qs.LeaseRequest(queues=[QUEUE], max_jobs=count, worker_id="bench"))
        return [(j.job.id, j.lease_token) for j in reply.jobs]

    async def ack(self, held: Sequence[Held]) -> None:
        if self.batched:
            acks = [qs.AckRequest(job_id=i, lease_token=t) for i, t in held]
            await self.stub.AckBatch(qs.AckBatchRequest(acks=acks))
        else:
            for i, t in held:
                await self.stub.Ack(qs.AckRequest(job_id=i, lease_token=t))

    async def ack_then_claim(self, held: Sequence[Held], count: int) -> list[Held]:
        """One call: the Ack (or AckBatch) leases the next jobs (`next`)."""
        lease = qs.LeaseRequest(queues=[QUEUE], max_jobs=count, worker_id="bench")
        if self.batched:
            acks = [qs.AckRequest(job_id=i, lease_token=t) for i, t in held]
            leased = (await self.stub.AckBatch(qs.AckBatchRequest(acks=acks, next=lease))).next
        else:
            ((i, t),) = held
            leased = (await self.stub.Ack(qs.AckRequest(job_id=i, lease_token=t, next=lease))).next
        return [(j.job.id, j.lease_token) for j in leased]
