"""Nack with release: a job handed back unfinished costs no attempt, is ready again, and is fenced."""

from __future__ import annotations

import asyncpg
import grpc

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Attempt, Job, Stub, expect_lease_lost, expire_lease, job_row, lease_one, ms, seconds
from tests.helpers import enqueue_request, expect_error


async def history(stub: Stub, job_id: str) -> list[tuple[int, int]]:
    job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
    return [(a.number, a.outcome) for a in job.attempts]


async def test_release_of_a_single_attempt_job_spends_nothing(stub: Stub, db: asyncpg.Connection) -> None:
    enq = await stub.Enqueue(enqueue_request("q", max_attempts=1))
    first = await lease_one(stub, "q", worker_id="w1")
    error = job_pb2.JobError(type="Shutdown", message="worker stopping")
    released = await stub.Nack(
        qs.NackRequest(
            job_id=first.job.id, lease_token=first.lease_token, error=error, release=True, checkpoint=b"page 3"
        )
    )
    assert released.job.state == Job.STATE_PENDING and released.job.attempt == 0
    assert released.job.last_error == error
    assert (await job_row(db, enq.job.id))["finished_at"] is None

    second = await lease_one(stub, "q", worker_id="w2")
    assert second.job.id == enq.job.id and second.job.attempt == 1
    assert second.lease_token != first.lease_token and second.job.checkpoint == b"page 3"
    assert await history(stub, enq.job.id) == [(1, Attempt.OUTCOME_RELEASED), (1, Attempt.OUTCOME_UNSPECIFIED)]
    acked = await stub.Ack(qs.AckRequest(job_id=second.job.id, lease_token=second.lease_token))
    assert acked.job.state == Job.STATE_SUCCEEDED


async def test_release_without_an_error_keeps_the_last_one(stub: Stub) -> None:
    enq = await stub.Enqueue(
        enqueue_request("q", max_attempts=2, backoff=job_pb2.BackoffPolicy(initial_interval=ms(1)))
    )
    first = await lease_one(stub, "q")
    error = job_pb2.JobError(type="ValueError", message="bad row 7")
    await stub.Nack(qs.NackRequest(job_id=first.job.id, lease_token=first.lease_token, error=error))
    second = await lease_one(stub, "q", wait=seconds(5))
    released = await stub.Nack(qs.NackRequest(job_id=second.job.id, lease_token=second.lease_token, release=True))
    assert released.job.state == Job.STATE_PENDING and released.job.attempt == 1
    assert released.job.last_error == error
    job = (await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))).job
    assert [(a.number, a.outcome) for a in job.attempts] == [
        (1, Attempt.OUTCOME_FAILED),
        (2, Attempt.OUTCOME_RELEASED),
    ]
    assert job.attempts[0].error == error and not job.attempts[1].HasField("error")


async def test_release_with_retry_after_waits_before_the_job_is_ready(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q"))
    leased = await lease_one(stub, "q")
    released = await stub.Nack(
        qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, release=True, retry_after=seconds(3600))
    )
    assert released.job.state == Job.STATE_PENDING and released.job.attempt == 0
    assert released.job.run_at.ToDatetime() > released.job.updated_at.ToDatetime()
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs


async def test_stale_release_is_lease_lost_and_changes_nothing(stub: Stub, db: asyncpg.Connection) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    first = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=first.job.id, lease_token=first.lease_token, release=True))
    # The same token again: the lease was already given back.
    await expect_lease_lost(stub.Nack(qs.NackRequest(job_id=enq.job.id, lease_token=first.lease_token, release=True)))
    second = await lease_one(stub, "q")
    await expect_lease_lost(stub.Nack(qs.NackRequest(job_id=enq.job.id, lease_token=first.lease_token, release=True)))
    row = await job_row(db, enq.job.id)
    assert (row["state"], row["attempt"], row["lease_token"]) == ("running", 1, int(second.lease_token))


async def test_release_after_the_lease_expired_is_lease_lost(stub: Stub, db: asyncpg.Connection) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    leased = await lease_one(stub, "q")
    await expire_lease(db, enq.job.id)
    await expect_lease_lost(stub.Nack(qs.NackRequest(job_id=enq.job.id, lease_token=leased.lease_token, release=True)))
    row = await job_row(db, enq.job.id)
    assert row["state"] == "running" and row["attempt"] == 1


async def test_release_of_a_cancel_requested_job_ends_it_cancelled(stub: Stub) -> None:
    enq = await stub.Enqueue(enqueue_request("q", max_attempts=3))
    leased = await lease_one(stub, "q")
    await stub.CancelJob(qs.CancelJobRequest(job_id=enq.job.id))
    released = await stub.Nack(qs.NackRequest(job_id=enq.job.id, lease_token=leased.lease_token, release=True))
    assert released.job.state == Job.STATE_CANCELLED and released.job.HasField("finished_at")
    assert await history(stub, enq.job.id) == [(1, Attempt.OUTCOME_CANCELLED)]
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs


async def test_release_with_retryable_false_is_refused(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue_request("q"))
    leased = await lease_one(stub, "q")
    await expect_error(
        stub.Nack(qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, release=True, retryable=False)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "retryable",
    )
    row = await job_row(db, leased.job.id)
    assert (row["state"], row["attempt"], row["lease_token"]) == ("running", 1, int(leased.lease_token))
