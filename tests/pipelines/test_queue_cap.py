"""SPOOL_MAX_QUEUES counts the queues that follow-ups and pipeline steps would create, as Enqueue
does: past the cap the call (the ack with it) is refused RESOURCE_EXHAUSTED QUEUE_LIMIT_REACHED."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.config import Limits
from tests.api.support import Stub, lease_one
from tests.conftest import test_settings as make_settings
from tests.helpers import enqueue_request, expect_error
from tests.pipelines.support import PStub, request, step

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
CAPPED = [make_settings(limits=Limits(max_queues=2))]


def ack_with(leased: qs.LeasedJob, *queues: str) -> qs.AckRequest:
    follow = [qs.FollowUp(job=enqueue_request(q)) for q in queues]
    return qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, follow_ups=follow)


@pytest.mark.parametrize("settings", CAPPED)
async def test_follow_ups_to_a_new_queue_past_the_cap_refuse_the_ack(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue_request("a"))
    await stub.Enqueue(enqueue_request("b"))
    leased = await lease_one(stub, "a")
    err = await expect_error(
        stub.Ack(ack_with(leased, "b", "c")), EXHAUSTED, "QUEUE_LIMIT_REACHED", "follow_ups.job.queue"
    )
    assert "SPOOL_MAX_QUEUES" in (err.details() or "") and "'c'" in (err.details() or "")
    answer = await stub.AckBatch(qs.AckBatchRequest(acks=[ack_with(leased, "c")]))
    assert answer.results[0].error.reason == "QUEUE_LIMIT_REACHED"
    assert answer.results[0].error.message.startswith("acks[0].follow_ups.job.queue: ")
    assert await db.fetchval("SELECT state FROM spool.jobs WHERE id = $1", int(leased.job.id)) == "running"
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'c'") == 0
    done = await stub.Ack(ack_with(leased, "b"))  # an existing queue still takes follow-ups
    assert done.job.state == job_pb2.Job.STATE_SUCCEEDED and len(done.follow_ups) == 1


@pytest.mark.parametrize("settings", CAPPED)
async def test_a_pipeline_whose_steps_need_new_queues_past_the_cap_is_refused(
    pipes: PStub, db: asyncpg.Connection
) -> None:
    await pipes.EnqueuePipeline(request(step("x", "a"), step("y", "b")))
    await expect_error(
        pipes.EnqueuePipeline(request(step("x", "a"), step("y", "c"))),
        EXHAUSTED,
        "QUEUE_LIMIT_REACHED",
        "steps.job.queue",
    )
    assert await db.fetchval("SELECT count(*) FROM spool.pipelines") == 1
