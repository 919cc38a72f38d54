"""The maintained queue counts (migration 0018) against a scan of spool.jobs, after a scripted run
through a real spoold that takes jobs through every transition; then the gauges of a scrape."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
from google.protobuf import duration_pb2

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.loops import Counts, Reaper
from tests.conftest import wait_until
from tests.helpers import enqueue_request
from tests.metrics.conftest import scrape

COLUMNS = "queue, ready, scheduled, retrying, running, succeeded, dead, cancelled, finished_last_minute, total"
# What the counts must equal at $1: the derived statuses as list_queues counted them by scanning,
# with run_at and finished_at to the second (the counts' grain).
SCAN = f"""
WITH j AS (
    SELECT *, date_trunc('second', run_at, 'UTC') AS due, date_trunc('second', finished_at, 'UTC') AS done
    FROM spool.jobs
)
SELECT {COLUMNS}, lag FROM (
    SELECT queue,
        count(*) FILTER (WHERE state = 'pending' AND attempt = 0 AND due <= $1) AS ready,
        count(*) FILTER (WHERE state = 'pending' AND attempt = 0 AND due > $1) AS scheduled,
        count(*) FILTER (WHERE state = 'pending' AND attempt > 0) AS retrying,
        count(*) FILTER (WHERE state = 'running') AS running,
        count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE state = 'dead') AS dead,
        count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE done > $1 - interval '1 minute') AS finished_last_minute,
        $1 - min(due) FILTER (WHERE state = 'pending' AND attempt = 0 AND due <= $1) AS lag,
        count(*) AS total
    FROM j GROUP BY queue
) s ORDER BY queue
"""
COUNTED = f"SELECT {COLUMNS}, lag FROM spool.queue_stats(NULL, $1) ORDER BY queue"


async def _same(db: asyncpg.Connection, at_offset: timedelta = timedelta(0)) -> list[dict]:
    """Asserts the counts equal the scan at one instant (now + at_offset), the oldest ready age
    too; returns them."""
    async with db.transaction(isolation="repeatable_read"):
        at = await db.fetchval("SELECT now() + $1::interval", at_offset)
        scanned = [dict(r) for r in await db.fetch(SCAN, at)]
        counted = [dict(r) for r in await db.fetch(COUNTED, at)]
    assert counted == scanned
    assert scanned, "the run left no job"
    return counted


def _lease_request(queue: str, n: int, seconds: int = 30) -> qs.LeaseRequest:
    return qs.LeaseRequest(
        queues=[queue], max_jobs=n, worker_id="w", lease_duration=duration_pb2.Duration(seconds=seconds)
    )


async def _script(app: App, stub: queue_service_pb2_grpc.QueueServiceStub, db: asyncpg.Connection) -> None:
    """Every transition: enqueue (now, later, deduplicated, batch, SQL), lease, ack, nack to retry and to
    DEAD, release, cancel, requeue, reap, and a delete (the pruner's)."""
    for i in range(12):
        delay = duration_pb2.Duration(seconds=3600 * (i % 3)) if i % 3 else None
        await stub.Enqueue(enqueue_request(f"q{i % 2}", {"i": i}, delay=delay, max_attempts=1 + i % 2))
    await stub.Enqueue(enqueue_request("q0", idempotency_key="same"))
    await stub.Enqueue(enqueue_request("q0", idempotency_key="same"))
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q2", {"b": b}) for b in range(20)]))
    await db.execute("SELECT spool.enqueue('q2', '{}')")
    leased = list((await stub.Lease(_lease_request("q2", 10))).jobs)
    await stub.AckBatch(
        qs.AckBatchRequest(acks=[qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in leased[:4]])
    )
    error = job_pb2.JobError(type="E", message="m")
    for j in leased[4:6]:
        await stub.Nack(qs.NackRequest(job_id=j.job.id, lease_token=j.lease_token, error=error, retryable=False))
    await stub.Nack(
        qs.NackRequest(job_id=leased[6].job.id, lease_token=leased[6].lease_token, error=error, release=True)
    )
    await stub.Requeue(qs.RequeueRequest(job_ids=[leased[4].job.id]))
    q1 = list((await stub.Lease(_lease_request("q1", 2))).jobs)
    await stub.Nack(qs.NackRequest(job_id=q1[0].job.id, lease_token=q1[0].lease_token, error=error))  # retried
    pending = await db.fetch("SELECT id FROM spool.jobs WHERE queue = 'q0' AND state = 'pending' ORDER BY id LIMIT 2")
    for r in pending:
        await stub.CancelJob(qs.CancelJobRequest(job_id=str(r["id"])))
    short = list((await stub.Lease(_lease_request("q2", 1, seconds=1))).jobs)
    assert short and json.loads(short[0].job.payload) is not None
    reaper = next(loop for loop in app.loops if isinstance(loop, Reaper))
    await wait_until(reaper.run_once, within=15, interval=0.2)
    await db.execute("DELETE FROM spool.jobs WHERE id = $1", int(leased[0].job.id))


async def test_the_counts_equal_a_scan(
    app: App, stub: queue_service_pb2_grpc.QueueServiceStub, db: asyncpg.Connection
) -> None:
    await _script(app, stub, db)
    before = await _same(db)
    assert {r["queue"]: r["total"] for r in before} == {"q0": 7, "q1": 6, "q2": 20}
    deltas = await db.fetchval("SELECT count(*) FROM spool.queue_count_deltas")
    assert deltas > 0
    counts = next(loop for loop in app.loops if isinstance(loop, Counts))
    await counts.run_once()
    assert await db.fetchval("SELECT count(*) FROM spool.queue_count_deltas") == 0
    await _same(db)
    # Three days on, the keys have aged into coarser ones; the counts, and the oldest ready age
    # (from the index), still equal the scan.
    await db.execute("SELECT spool.roll_up_counts(now() + interval '3 days')")
    await _same(db, timedelta(days=3))
    rows = await db.fetchval("SELECT count(*) FROM spool.queue_counts")
    assert rows <= 3 * 8, f"{rows} count rows for 3 queues"


async def test_the_gauges_are_the_counts(
    app: App, stub: queue_service_pb2_grpc.QueueServiceStub, db: asyncpg.Connection
) -> None:
    await _script(app, stub, db)
    counted = await _same(db)
    m = await scrape(app)
    assert m.get("spool_queue_gauges_up") == 1
    for r in counted:
        for status in ("ready", "scheduled", "retrying", "running", "succeeded", "dead", "cancelled"):
            assert m.get("spool_queue_jobs", queue=r["queue"], status=status) == r[status], (r, status)
    assert m.get("spool_queue_oldest_ready_age_seconds", queue="q0") >= 0
    assert m.get("spool_queue_jobs", queue="q1", status="retrying") == 1


async def test_truncate_resets_the_counts(
    app: App, stub: queue_service_pb2_grpc.QueueServiceStub, db: asyncpg.Connection
) -> None:
    await stub.Enqueue(enqueue_request("q0"))
    await db.execute("TRUNCATE spool.jobs CASCADE")
    assert await db.fetch("SELECT * FROM spool.queue_stats(NULL, now())") == []
    await stub.Enqueue(enqueue_request("q0"))
    assert [r["ready"] for r in await _same(db)] == [1]
