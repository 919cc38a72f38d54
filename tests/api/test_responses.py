"""What the hot-path responses carry: AckBatch's per-item outcomes, and times and durations converted
to protobuf without losing or shifting a microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.api import convert
from spoold.store import rows
from tests.api.support import Stub, lease_one
from tests.helpers import enqueue_request


async def test_ack_batch_answers_each_item_in_order_and_records_the_acked(stub: Stub, db: asyncpg.Connection) -> None:
    for n in range(3):
        await stub.Enqueue(enqueue_request("q", {"n": n}))
    first, second, third = [await lease_one(stub, "q") for _ in range(3)]
    answer = await stub.AckBatch(
        qs.AckBatchRequest(
            acks=[
                qs.AckRequest(job_id=second.job.id, lease_token=second.lease_token, result=b'{"ok":2}'),
                qs.AckRequest(job_id=third.job.id, lease_token="999"),
                qs.AckRequest(job_id="424242", lease_token="1"),
                qs.AckRequest(job_id=first.job.id, lease_token=first.lease_token),
            ]
        )
    )
    assert [r.job_id for r in answer.results] == [second.job.id, third.job.id, "424242", first.job.id]
    assert [r.HasField("error") for r in answer.results] == [False, True, True, False]
    lost, missing = answer.results[1].error, answer.results[2].error
    assert (lost.code, lost.reason) == (grpc.StatusCode.FAILED_PRECONDITION.value[0], "LEASE_LOST")
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND.value[0], "JOB_NOT_FOUND")
    rows = await db.fetch("SELECT id::text, state, result FROM spool.jobs ORDER BY id")
    by_id = {r["id"]: (r["state"], r["result"]) for r in rows}
    assert by_id[second.job.id] == ("succeeded", b'{"ok":2}')
    assert by_id[first.job.id] == ("succeeded", None)
    assert by_id[third.job.id][0] == "running"
    attempts = await db.fetch("SELECT job_id::text, outcome, worker_id FROM spool.attempts ORDER BY job_id")
    assert [(a["job_id"], a["outcome"], a["worker_id"]) for a in attempts] == sorted(
        [(first.job.id, "succeeded", "w1"), (second.job.id, "succeeded", "w1")]
    )


async def test_enqueued_and_claimed_rows_are_sent_as_the_job_built_from_them_would_be(
    stub: Stub, db: asyncpg.Connection
) -> None:
    # Enqueues and leases convert rows straight to messages (convert._row_fields); everything else
    # goes through a Job. Every column a job can fill, set and unset, must come out the same both ways.
    backoff = job_pb2.BackoffPolicy(kind=job_pb2.BackoffPolicy.KIND_LINEAR, initial_interval=Duration(seconds=2))
    full = {
        "headers": {"trace": "t-1", "lang": "py"},
        "priority": 5,
        "max_attempts": 3,
        "backoff": backoff,
        "attempt_timeout": Duration(seconds=90),
        "idempotency_key": "once",
        "concurrency_key": "tenant-1",
        "concurrency_limit": 2,
    }
    created = await stub.Enqueue(enqueue_request("q", {"all": True}, **full))
    again = await stub.Enqueue(enqueue_request("q", {"all": True}, **full))
    raw = await stub.EnqueueBatch(
        qs.EnqueueBatchRequest(
            jobs=[qs.EnqueueRequest(queue="q", payload=b"\x00raw", content_type="application/octet-stream")]
        )
    )
    enqueued = await db.fetch("SELECT * FROM spool.jobs ORDER BY id")
    assert [created.job, raw.results[0].job] == [convert.job_proto(rows.job(r)) for r in enqueued]
    assert again.deduplicated and again.job == created.job
    await stub.Enqueue(enqueue_request("q", delay=Duration(seconds=3600)))
    for _ in range(3):
        await stub.Enqueue(enqueue_request("q"))
    leased = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5, worker_id="w1"))).jobs
    failed, acked = leased[-2], leased[-1]
    await stub.Nack(
        qs.NackRequest(
            job_id=failed.job.id,
            lease_token=failed.lease_token,
            error=job_pb2.JobError(type="ValueError", message="bad", details="trace"),
            checkpoint=b'{"step":2}',
        )
    )
    await stub.Ack(qs.AckRequest(job_id=acked.job.id, lease_token=acked.lease_token, result=b'{"ok":1}'))

    found = await db.fetch("SELECT * FROM spool.jobs ORDER BY id")
    states = {r["state"] for r in found}
    assert states == {"pending", "running", "succeeded", "dead"}
    sent_all = qs.LeaseResponse()
    convert.add_leased(sent_all.jobs, found)
    for row, sent in zip(found, sent_all.jobs, strict=True):
        assert sent.job == convert.job_proto(rows.job(row)), row["id"]
        if row["state"] == "running":
            assert sent.lease_token == str(row["lease_token"])
        assert sent.lease_expires_at == sent.job.lease_expires_at
        assert sent.attempt_deadline == sent.job.attempt_deadline
    (dead,) = [s.job for s in sent_all.jobs if s.job.id == failed.job.id]
    assert (dead.last_error.message, dead.checkpoint) == ("bad", b'{"step":2}')
    assert sent_all.jobs[0].job.headers == full["headers"]


async def test_lease_and_ack_times_are_the_stored_ones(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue_request("q", lease_duration=Duration(seconds=7, nanos=250_000_000)))
    lj = await lease_one(stub, "q")
    row = await db.fetchrow("SELECT * FROM spool.jobs WHERE id = $1", int(lj.job.id))
    assert row is not None
    for field in ("run_at", "created_at", "updated_at", "lease_expires_at"):
        assert getattr(lj.job, field).ToDatetime(tzinfo=UTC) == row[field], field
    assert lj.lease_expires_at == lj.job.lease_expires_at
    assert lj.job.lease_duration.ToTimedelta() == timedelta(seconds=7.25)
    assert not lj.job.HasField("finished_at") and not lj.job.HasField("attempt_timeout")
    done = (await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))).job
    row = await db.fetchrow("SELECT * FROM spool.jobs WHERE id = $1", int(lj.job.id))
    assert row is not None
    assert done.finished_at.ToDatetime(tzinfo=UTC) == row["finished_at"]
    assert not done.HasField("lease_expires_at")


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 1, 2, 30, tzinfo=datetime.now().astimezone().tzinfo),
        datetime(2026, 3, 1, 2, 30, 0, 1),  # naive: taken as UTC
    ],
)
def test_timestamps_match_protobufs_own_conversion(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    assert convert.ts(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(microseconds=-1),
        timedelta(seconds=-1, microseconds=250_000),
        timedelta(days=-3, seconds=5),
        timedelta(days=36500, microseconds=999_999),
    ],
)
def test_durations_match_protobufs_own_conversion(value: timedelta) -> None:
    expected = Duration()
    expected.FromTimedelta(value)
    assert convert.dur(value) == expected
