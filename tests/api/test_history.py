"""What a job's history says after retries, success and requeues: a SUCCEEDED job has no last error
(its attempts keep every error), and each attempt records how many requeues preceded it."""

from __future__ import annotations

import asyncpg

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.helpers import enqueue_request

Job = job_pb2.Job


async def lease_one(stub: QueueServiceStub, queue: str) -> qs.LeasedJob:
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=[queue], worker_id="w"))).jobs
    return leased


async def fail(stub: QueueServiceStub, leased: qs.LeasedJob, retryable: bool = True) -> None:
    error = job_pb2.JobError(type="Timeout", message="slow", details="Traceback ...")
    nack = qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, error=error, retryable=retryable)
    await stub.Nack(nack)


async def test_success_clears_the_last_error_and_the_attempts_keep_it(stub: QueueServiceStub) -> None:
    for i, batch in enumerate((False, True)):  # Ack, and AckBatch (a statement of its own)
        queue = f"q{i}"
        job = (await stub.Enqueue(enqueue_request(queue, max_attempts=3))).job
        await fail(stub, await lease_one(stub, queue))
        retrying = (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job
        assert retrying.last_error.type == "Timeout"
        # The backoff from 1 s: a long poll takes the job when it is due.
        leased = await lease_when_due(stub, queue)
        if batch:
            await stub.AckBatch(qs.AckBatchRequest(acks=[qs.AckRequest(job_id=job.id, lease_token=leased.lease_token)]))
        else:
            acked = await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=leased.lease_token))
            assert not acked.job.HasField("last_error")
        got = (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job
        assert got.state == Job.STATE_SUCCEEDED and not got.HasField("last_error")
        assert [a.error.type for a in got.attempts] == ["Timeout", ""]
        assert got.attempts[0].error.details == "Traceback ..."


async def lease_when_due(stub: QueueServiceStub, queue: str) -> qs.LeasedJob:
    reply = await stub.Lease(qs.LeaseRequest(queues=[queue], worker_id="w", wait={"seconds": 10}))
    (leased,) = reply.jobs
    return leased


async def test_attempts_record_the_requeues_before_them(stub: QueueServiceStub, db: asyncpg.Connection) -> None:
    job = (await stub.Enqueue(enqueue_request("rq"))).job
    await fail(stub, await lease_one(stub, "rq"), retryable=False)
    requeued = (await stub.Requeue(qs.RequeueRequest(job_ids=[job.id]))).jobs[0]
    assert requeued.requeues == 1 and requeued.attempt == 0
    # The last error is kept through the requeue: it is still the job's latest failure.
    assert requeued.last_error.type == "Timeout"
    await fail(stub, await lease_one(stub, "rq"), retryable=False)
    flt = job_pb2.JobFilter(queues=["rq"], states=[Job.STATE_DEAD])
    (again,) = (await stub.Requeue(qs.RequeueRequest(filter=flt))).jobs
    assert again.requeues == 2
    running = await lease_one(stub, "rq")
    got = (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job
    assert [(a.number, a.requeues) for a in got.attempts] == [(1, 0), (1, 1), (1, 2)]
    assert got.attempts[-1].outcome == job_pb2.Attempt.OUTCOME_UNSPECIFIED  # the running one
    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=running.lease_token))
    rows = await db.fetch("SELECT requeues FROM spool.attempts WHERE job_id = $1 ORDER BY lease_token", int(job.id))
    assert [r["requeues"] for r in rows] == [0, 1, 2]
