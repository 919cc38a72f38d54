"""The crash test (issue 3, item 7): a worker leases a job and stops heartbeating; the reaper frees it;
a second worker leases and acks it; the first worker's late Ack gets LEASE_LOST; the job shows two
attempts (LEASE_EXPIRED, SUCCEEDED) and one result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from tests import conftest
from tests.api.support import Attempt, Job, Stub, count, expect_lease_lost, ms, seconds
from tests.helpers import enqueue_request


@pytest.fixture
def settings() -> Settings:
    # The app's own reaper loop frees the lease, as in production, only more often.
    return conftest.test_settings(reaper_interval=timedelta(milliseconds=100))


@pytest.fixture
async def second_worker(app: App) -> AsyncIterator[Stub]:
    """Another worker process: its own channel to the server."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield queue_service_pb2_grpc.QueueServiceStub(ch)


async def test_crashed_worker_job_runs_again_and_its_late_ack_is_refused(  # type: ignore[no-untyped-def]
    stub: Stub, second_worker: Stub, db
) -> None:
    retry_soon = job_pb2.BackoffPolicy(kind=job_pb2.BackoffPolicy.KIND_FIXED, initial_interval=ms(50), jitter=False)
    job_id = (await stub.Enqueue(enqueue_request("crash", {"n": 1}, max_attempts=2, backoff=retry_soon))).job.id

    # Worker 1 leases, heartbeats once, then goes silent (crashed, partitioned or stuck in GC).
    (first,) = (await stub.Lease(qs.LeaseRequest(queues=["crash"], worker_id="worker-1", lease_duration=ms(300)))).jobs
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=job_id, lease_token=first.lease_token, lease_duration=ms(300)))

    async def freed() -> bool:
        job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
        return job.state == Job.STATE_PENDING

    await conftest.wait_until(freed, within=10)

    # Worker 2 leases the job and finishes it.
    (second,) = (
        await second_worker.Lease(qs.LeaseRequest(queues=["crash"], worker_id="worker-2", wait=seconds(10)))
    ).jobs
    assert second.job.id == job_id and second.job.attempt == 2
    assert int(second.lease_token) > int(first.lease_token)
    acked = await second_worker.Ack(qs.AckRequest(job_id=job_id, lease_token=second.lease_token, result=b'{"by": 2}'))
    assert acked.job.state == Job.STATE_SUCCEEDED

    # Worker 1 wakes up and reports: every fenced call is refused and changes nothing.
    late_ack = stub.Ack(qs.AckRequest(job_id=job_id, lease_token=first.lease_token, result=b'{"by": 1}'))
    await expect_lease_lost(late_ack)
    late_beat = stub.Heartbeat(qs.HeartbeatRequest(job_id=job_id, lease_token=first.lease_token))
    await expect_lease_lost(late_beat)
    late_nack = stub.Nack(qs.NackRequest(job_id=job_id, lease_token=first.lease_token))
    await expect_lease_lost(late_nack)

    job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
    assert job.state == Job.STATE_SUCCEEDED
    assert job.result == b'{"by": 2}'
    assert [(a.number, a.worker_id, a.lease_token, a.outcome) for a in job.attempts] == [
        (1, "worker-1", first.lease_token, Attempt.OUTCOME_LEASE_EXPIRED),
        (2, "worker-2", second.lease_token, Attempt.OUTCOME_SUCCEEDED),
    ]
    assert job.attempts[0].error.type == "LeaseExpired"
    assert await count(db, "attempts") == 2
    assert await db.fetchval("SELECT count(*) FROM spool.attempts WHERE outcome = 'succeeded'") == 1


async def test_crashed_worker_on_the_last_attempt_leaves_the_job_dead(stub: Stub) -> None:
    job_id = (await stub.Enqueue(enqueue_request("crash"))).job.id
    (lj,) = (await stub.Lease(qs.LeaseRequest(queues=["crash"], lease_duration=ms(200)))).jobs

    async def dead() -> bool:
        return (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job.state == Job.STATE_DEAD

    await conftest.wait_until(dead, within=10)
    await expect_lease_lost(stub.Ack(qs.AckRequest(job_id=job_id, lease_token=lj.lease_token)))
    job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
    assert job.state == Job.STATE_DEAD and job.last_error.type == "LeaseExpired"
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_LEASE_EXPIRED]
