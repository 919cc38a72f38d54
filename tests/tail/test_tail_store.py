"""The events the jobs triggers record while a server tails: one per state change (not per
heartbeat), none while nobody tails; a transaction that commits late fills its gap later."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.store.tail import TailStore
from tests.api.support import Stub
from tests.helpers import enqueue_request


async def _kinds(store: TailStore, after: int) -> list[tuple[str, str]]:
    return [(e.kind, e.state.name) for e in await store.read(after, (), 1000)]


async def test_state_changes_are_recorded_only_while_someone_tails(
    app: App, stub: Stub, db: asyncpg.Connection
) -> None:
    store = TailStore(app.pool, uuid.uuid4(), timedelta(seconds=30))
    await stub.Enqueue(enqueue_request("untailed", {}))
    assert await db.fetchval("SELECT count(*) FROM spool.job_events") == 0

    await store.register()
    start = await store.end()
    job = (await stub.Enqueue(enqueue_request("tailed", {}, max_attempts=2))).job
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["tailed"]))).jobs
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=job.id, lease_token=leased.lease_token))
    await stub.Nack(qs.NackRequest(job_id=job.id, lease_token=leased.lease_token, error={"message": "boom"}))
    assert await _kinds(store, start) == [("enqueued", "PENDING"), ("started", "RUNNING"), ("failed", "PENDING")]

    await store.unregister()
    await stub.CancelJob(qs.CancelJobRequest(job_id=job.id))
    assert len(await _kinds(store, start)) == 3, "no events once nobody tails"


async def test_a_late_commit_leaves_a_gap_that_is_read_later(app: App, stub: Stub, db_url: str) -> None:
    store = TailStore(app.pool, uuid.uuid4(), timedelta(seconds=30))
    await store.register()
    start = await store.end()
    conn = await asyncpg.connect(db_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT spool.enqueue('slow', '{}'::jsonb)")  # numbered first, not committed
        await stub.Enqueue(enqueue_request("fast", {}))
        (fast,) = await store.read(start, (), 1000)
        assert fast.queue == "fast" and fast.seq == start + 2
        await tx.commit()
    finally:
        await conn.close()
    (slow,) = await store.read(fast.seq, [start + 1], 1000)
    assert slow.queue == "slow"
