"""Round trips of the job lifecycle over gRPC: every RPC of the core queue, with the rows behind it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.notify.listener import READY
from tests import conftest
from tests.api.support import Attempt, Job, Stub, count, job_row, lease_one, ms, seconds
from tests.helpers import enqueue_request, expect_error


async def test_enqueue_returns_a_pending_job_with_defaults(stub: Stub) -> None:
    resp = await stub.Enqueue(enqueue_request("emails", {"to": "a@example.com"}, headers={"traceparent": "00-abc"}))
    job = resp.job
    assert not resp.deduplicated
    assert job.id and job.queue == "emails" and job.state == Job.STATE_PENDING
    assert job.content_type == "application/json"
    assert dict(job.headers) == {"traceparent": "00-abc"}
    assert (job.attempt, job.max_attempts, job.priority) == (0, 1, 0)
    assert job.backoff.kind == job_pb2.BackoffPolicy.KIND_EXPONENTIAL
    assert job.backoff.initial_interval.ToMilliseconds() == 1000
    assert job.backoff.max_interval.ToSeconds() == 300
    assert job.backoff.jitter
    got = await stub.GetJob(qs.GetJobRequest(job_id=job.id))
    assert got.job == job


async def test_binary_payload_is_kept_byte_for_byte(stub: Stub) -> None:
    body = bytes(range(256))
    resp = await stub.Enqueue(qs.EnqueueRequest(queue="bin", payload=body, content_type="application/octet-stream"))
    leased = await lease_one(stub, "bin")
    assert leased.job.id == resp.job.id
    assert leased.job.payload == body
    assert leased.job.content_type == "application/octet-stream"


async def test_lease_ack_stores_the_result_and_records_the_attempt(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    enq = await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q", worker_id="worker-7")
    assert lj.job.state == Job.STATE_RUNNING and lj.job.attempt == 1
    assert lj.job.worker_id == "worker-7"
    assert lj.lease_token and lj.lease_expires_at.seconds > 0
    assert not lj.HasField("attempt_deadline")
    acked = await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token, result=b'{"sent": 3}'))
    assert acked.job.state == Job.STATE_SUCCEEDED
    assert acked.job.result == b'{"sent": 3}' and acked.job.result_content_type == "application/json"
    assert acked.job.HasField("finished_at") and not acked.job.HasField("lease_expires_at")
    got = (await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))).job
    (attempt,) = got.attempts
    assert attempt.number == 1 and attempt.worker_id == "worker-7" and attempt.lease_token == lj.lease_token
    assert attempt.outcome == Attempt.OUTCOME_SUCCEEDED
    assert attempt.duration.ToNanoseconds() >= 0
    assert (await job_row(db, enq.job.id))["state"] == "succeeded"


async def test_lease_from_several_queues_up_to_max_jobs(stub: Stub) -> None:
    ids = {(await stub.Enqueue(enqueue_request(q))).job.id for q in ("a", "b", "b", "c")}
    resp = await stub.Lease(qs.LeaseRequest(queues=["a", "b", "c"], max_jobs=3))
    assert len(resp.jobs) == 3
    rest = await stub.Lease(qs.LeaseRequest(queues=["a", "b", "c"], max_jobs=3))
    assert {lj.job.id for lj in (*resp.jobs, *rest.jobs)} == ids
    assert not (await stub.Lease(qs.LeaseRequest(queues=["a", "b", "c"], max_jobs=3))).jobs


async def test_nack_retries_then_getjob_shows_the_attempts_history(stub: Stub) -> None:
    enq = await stub.Enqueue(
        enqueue_request("q", max_attempts=3, backoff=job_pb2.BackoffPolicy(initial_interval=ms(1)))
    )
    first = await lease_one(stub, "q", worker_id="w1")
    error = job_pb2.JobError(type="ValueError", message="bad row 7", details="Traceback ...")
    nacked = await stub.Nack(qs.NackRequest(job_id=first.job.id, lease_token=first.lease_token, error=error))
    assert nacked.job.state == Job.STATE_PENDING and nacked.job.last_error == error
    second = await lease_one(stub, "q", worker_id="w2", wait=ms(5000))
    assert second.job.attempt == 2 and second.lease_token != first.lease_token
    running = (await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))).job
    assert [(a.number, a.outcome) for a in running.attempts] == [
        (1, Attempt.OUTCOME_FAILED),
        (2, Attempt.OUTCOME_UNSPECIFIED),  # the attempt in progress
    ]
    await stub.Ack(qs.AckRequest(job_id=second.job.id, lease_token=second.lease_token))
    done = (await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))).job
    assert done.state == Job.STATE_SUCCEEDED
    failed, succeeded = done.attempts
    assert (failed.worker_id, failed.lease_token, failed.error) == ("w1", first.lease_token, error)
    assert (succeeded.worker_id, succeeded.lease_token) == ("w2", second.lease_token)
    assert succeeded.outcome == Attempt.OUTCOME_SUCCEEDED and not succeeded.HasField("error")
    assert failed.finished_at.ToDatetime() <= succeeded.started_at.ToDatetime()


async def test_checkpoint_from_heartbeat_is_handed_to_the_next_attempt(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=2, backoff=job_pb2.BackoffPolicy(initial_interval=ms(1))))
    first = await lease_one(stub, "q")
    assert first.job.checkpoint == b""
    beat = await stub.Heartbeat(
        qs.HeartbeatRequest(job_id=first.job.id, lease_token=first.lease_token, checkpoint=b"row=500")
    )
    assert not beat.cancel_requested
    await stub.Nack(qs.NackRequest(job_id=first.job.id, lease_token=first.lease_token))
    second = await lease_one(stub, "q", wait=ms(5000))
    assert second.job.id == first.job.id and second.job.checkpoint == b"row=500"


async def test_heartbeat_without_checkpoint_keeps_the_saved_one(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, checkpoint=b"1"))
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    assert (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job.checkpoint == b"1"


async def test_cancel_running_job_is_seen_by_heartbeat_and_nack_ends_cancelled(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=5))
    lj = await lease_one(stub, "q")
    cancelled = await stub.CancelJob(qs.CancelJobRequest(job_id=lj.job.id))
    assert cancelled.job.state == Job.STATE_RUNNING and cancelled.job.cancel_requested
    beat = await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    assert beat.cancel_requested
    nacked = await stub.Nack(
        qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token, error=job_pb2.JobError(message="stopped"))
    )
    assert nacked.job.state == Job.STATE_CANCELLED and nacked.job.HasField("finished_at")
    got = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert [a.outcome for a in got.attempts] == [Attempt.OUTCOME_CANCELLED]


async def test_cancel_pending_job_ends_cancelled_and_is_never_leased(stub: Stub) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    resp = await stub.CancelJob(qs.CancelJobRequest(job_id=enq.job.id))
    assert resp.job.state == Job.STATE_CANCELLED and resp.job.HasField("finished_at")
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    again = await stub.CancelJob(qs.CancelJobRequest(job_id=enq.job.id))
    assert again.job.state == Job.STATE_CANCELLED  # cancelling twice is harmless


async def test_cancel_finished_job_is_refused(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    await expect_error(
        stub.CancelJob(qs.CancelJobRequest(job_id=lj.job.id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
        "job_id",
    )


async def test_requeue_gives_a_fresh_attempt_budget(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=1))
    lj = await lease_one(stub, "q")
    dead = await stub.Nack(qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    assert dead.job.state == Job.STATE_DEAD and dead.job.attempt == 1
    requeued = await stub.Requeue(qs.RequeueRequest(job_ids=[lj.job.id]))
    (job,) = requeued.jobs
    assert job.state == Job.STATE_PENDING and job.attempt == 0 and not job.HasField("finished_at")
    again = await lease_one(stub, "q")
    assert again.job.attempt == 1 and int(again.lease_token) > int(lj.lease_token)
    await stub.Ack(qs.AckRequest(job_id=again.job.id, lease_token=again.lease_token))


async def test_requeue_cancelled_and_succeeded_on_request(stub: Stub) -> None:
    cancelled = (await stub.Enqueue(enqueue_request("q"))).job
    await stub.CancelJob(qs.CancelJobRequest(job_id=cancelled.id))
    await stub.Enqueue(enqueue_request("other"))
    lj = await lease_one(stub, "other")
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    await expect_error(
        stub.Requeue(qs.RequeueRequest(job_ids=[cancelled.id, lj.job.id])),
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
        "job_ids",
    )
    # All or nothing: the cancelled job was not requeued by the refused call.
    assert (await stub.GetJob(qs.GetJobRequest(job_id=cancelled.id))).job.state == Job.STATE_CANCELLED
    resp = await stub.Requeue(qs.RequeueRequest(job_ids=[cancelled.id, lj.job.id], include_succeeded=True))
    assert [(j.id, j.state, j.cancel_requested) for j in resp.jobs] == [
        (cancelled.id, Job.STATE_PENDING, False),
        (lj.job.id, Job.STATE_PENDING, False),
    ]


async def test_enqueue_batch_creates_all_in_order(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    reqs = [enqueue_request("batch", {"i": i}) for i in range(5)]
    resp = await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=reqs))
    assert [r.job.payload for r in resp.results] == [r.payload for r in reqs]
    assert [int(r.job.id) for r in resp.results] == sorted(int(r.job.id) for r in resp.results)
    assert await count(db) == 5


async def test_enqueue_batch_is_all_or_nothing(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    reqs = [enqueue_request("batch"), enqueue_request("batch"), enqueue_request("batch", max_attempts=0)]
    await expect_error(
        stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=reqs)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "jobs[2].max_attempts",
    )
    assert await count(db) == 0


async def test_enqueue_batch_with_a_taken_key_dedupes_that_item_only(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    first = (await stub.Enqueue(enqueue_request("batch", idempotency_key="k1"))).job
    resp = await stub.EnqueueBatch(
        qs.EnqueueBatchRequest(
            jobs=[
                enqueue_request("batch", idempotency_key="k0"),
                enqueue_request("batch", idempotency_key="k1"),
                enqueue_request("batch", idempotency_key="k0"),
            ]
        )
    )
    assert [r.deduplicated for r in resp.results] == [False, True, True]
    assert resp.results[1].job.id == first.id
    assert resp.results[0].job.id == resp.results[2].job.id
    assert await count(db) == 2


@pytest.mark.parametrize("wake", ["enqueue", "requeue"])
async def test_waiting_lease_is_woken_by_notify_not_by_polling(db_url: str, wake: str) -> None:
    # Polling every hour: within the test's bound only the NOTIFY can hand the job to the waiter.
    app = App(conftest.test_settings(lease_poll_interval=timedelta(hours=1)), db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = queue_service_pb2_grpc.QueueServiceStub(ch)
            job_id = ""
            if wake == "requeue":
                job_id = (await stub.Enqueue(enqueue_request("q"))).job.id
                await stub.CancelJob(qs.CancelJobRequest(job_id=job_id))
            waiting = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], wait=seconds(60))))
            assert app.listener is not None
            await conftest.wait_until(lambda: app.listener.subscriber_count(READY) == 1)  # type: ignore[union-attr]
            if wake == "requeue":
                await stub.Requeue(qs.RequeueRequest(job_ids=[job_id]))
            else:
                job_id = (await stub.Enqueue(enqueue_request("q"))).job.id
            resp = await asyncio.wait_for(waiting, timeout=20)
            assert [lj.job.id for lj in resp.jobs] == [job_id]
    finally:
        await app.stop()
