"""The edges of the representable: timestamps at both ends of their range, results labelled JSON
that are not, and an EnqueueBatch over its total size. Each is refused or clamped, never stored as
something that breaks a later call."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Limits, Settings
from tests import conftest
from tests.api.support import Job, Stub, count, job_row, lease_one
from tests.helpers import enqueue_request, expect_error

YEAR_1 = -62135596800  # 0001-01-01T00:00:00Z, the first second a Timestamp may hold
YEAR_9999_END = Timestamp(seconds=253402300799, nanos=999_999_999)
MIB = 1024 * 1024


@pytest.mark.parametrize(
    "run_at",
    [Timestamp(seconds=YEAR_1), Timestamp(seconds=YEAR_1, nanos=999), Timestamp(seconds=YEAR_1, nanos=1000)],
    ids=["year-1", "year-1-first-microsecond", "year-1-second-microsecond"],
)
async def test_a_run_at_long_past_is_due_now_and_queue_stats_keep_working(
    app: App, stub: Stub, db, run_at: Timestamp
) -> None:  # type: ignore[no-untyped-def]
    one = await stub.Enqueue(enqueue_request("q", run_at=run_at))
    batch = await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q", run_at=run_at)]))
    for job in (one.job, batch.results[0].job):
        row = await job_row(db, job.id)
        assert row["run_at"] == row["created_at"], "a time already past is stored as now"
        assert job.run_at == job.created_at
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        listed = await admin.ListQueues(adm.ListQueuesRequest())
        assert [(q.name, q.stats.ready) for q in listed.queues] == [("q", 2)]
        got = await admin.GetQueue(adm.GetQueueRequest(name="q"))
        assert got.queue.stats.lag.ToTimedelta().total_seconds() < 3600
    assert (await lease_one(stub, "q")).job.id == one.job.id


async def test_a_run_at_just_past_runs_now(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    run_at = Timestamp()
    run_at.FromDatetime(datetime(2001, 1, 1, tzinfo=UTC))
    enq = await stub.Enqueue(enqueue_request("q", run_at=run_at))
    assert enq.job.run_at == enq.job.created_at
    assert (await lease_one(stub, "q")).job.id == enq.job.id


@pytest.mark.parametrize("field", ["created", "finished"])
async def test_search_bounds_at_both_ends_of_the_range_mean_no_bound(stub: Stub, field: str) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    for after in (Timestamp(seconds=YEAR_1), Timestamp(seconds=YEAR_1, nanos=1)):
        f = job_pb2.JobFilter(**{f"{field}_after": after, f"{field}_before": YEAR_9999_END})
        found = await stub.ListJobs(qs.ListJobsRequest(filter=f))
        assert [j.id for j in found.jobs] == [enq.job.id]


async def test_the_database_refuses_a_run_at_out_of_range_from_any_door(db) -> None:  # type: ignore[no-untyped-def]
    # spool.enqueue() checks run_at itself (tests/store/test_sql_enqueue.py); a write by hand meets the constraint.
    job_id = await db.fetchval("SELECT spool.enqueue('q', '{}')")
    for bad in ("-infinity", "infinity", "10000-01-01", "0001-01-01 00:00:00+00"):
        with pytest.raises(asyncpg.CheckViolationError, match="jobs_run_at_range"):
            await db.execute(f"UPDATE spool.jobs SET run_at = '{bad}' WHERE id = $1", job_id)
    assert await count(db) == 1


# ---- results labelled JSON are JSON


async def test_ack_batch_refuses_a_json_result_that_is_not_and_names_the_item(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        await stub.Enqueue(enqueue_request("q"))
    a, b = await lease_one(stub, "q"), await lease_one(stub, "q")
    before = [await job_row(db, a.job.id), await job_row(db, b.job.id)]
    acks = [
        qs.AckRequest(job_id=a.job.id, lease_token=a.lease_token, result=b'{"ok": true}'),
        qs.AckRequest(job_id=b.job.id, lease_token=b.lease_token, result=b'{"n": NaN}'),
    ]
    await expect_error(
        stub.AckBatch(qs.AckBatchRequest(acks=acks)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "acks[1].result",
    )
    assert [await job_row(db, a.job.id), await job_row(db, b.job.id)] == before


@pytest.mark.parametrize(
    ("result", "content_type"),
    [(b"{oops", "text/plain"), (b"\xff\x00NaN", "application/octet-stream"), (b"", "application/json"), (b"null", "")],
)
async def test_results_that_need_no_json_check_are_stored_as_sent(
    stub: Stub, db, result: bytes, content_type: str
) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    ack = qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token, result=result, result_content_type=content_type)
    assert (await stub.Ack(ack)).job.state == Job.STATE_SUCCEEDED
    assert (await job_row(db, lj.job.id))["result"] == result


# ---- an EnqueueBatch has a total size


async def test_an_enqueue_batch_over_its_total_size_is_refused_whole(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    big = b'"' + b"x" * (MIB - 16) + b'"'  # under the payload limit each, 20 MiB in all
    batch = qs.EnqueueBatchRequest(jobs=[enqueue_request("q", payload=None) for _ in range(20)])
    for job in batch.jobs:
        job.payload = big
    err = await expect_error(stub.EnqueueBatch(batch), grpc.StatusCode.RESOURCE_EXHAUSTED, "BATCH_TOO_LARGE", "jobs")
    assert str(Limits().max_batch_bytes) in (err.details() or "")
    assert await count(db) == 0
    del batch.jobs[3:]  # within the limit (the answer, payloads and all, within the client's 4 MiB)
    assert len((await stub.EnqueueBatch(batch)).results) == 3


async def test_the_total_size_of_an_enqueue_batch_is_configurable(db_url: str, db) -> None:  # type: ignore[no-untyped-def]
    settings = conftest.test_settings()
    app = App(replace(settings, limits=replace(settings.limits, max_batch_bytes=1000)), db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = Stub(channel)
            small = qs.EnqueueBatchRequest(jobs=[enqueue_request("q", {"i": i}) for i in range(10)])
            await stub.EnqueueBatch(small)
            large = qs.EnqueueBatchRequest(jobs=[enqueue_request("q", {"s": "x" * 100}) for _ in range(10)])
            await expect_error(stub.EnqueueBatch(large), grpc.StatusCode.RESOURCE_EXHAUSTED, "BATCH_TOO_LARGE", "jobs")
    finally:
        await app.stop()
    assert await count(db) == 10


@pytest.mark.parametrize("name", ["max_delay", "max_lease_duration", "max_attempt_timeout", "max_wait"])
def test_duration_limits_keep_every_time_within_the_representable(name: str) -> None:
    """now + a limit must stay a time PostgreSQL, Python and a Timestamp can all hold."""
    with pytest.raises(ValueError, match=f"SPOOL_{name.upper()}"):
        Limits(**{name: timedelta(days=3651)})
    with pytest.raises(ValueError, match=f"SPOOL_{name.upper()}"):
        Settings.from_env({f"SPOOL_{name.upper()}": "0"})
    assert getattr(Limits(**{name: timedelta(days=3650)}), name) == timedelta(days=3650)
