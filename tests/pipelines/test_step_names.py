"""A step's name is unique in its pipeline, in the table too (migration 0028), and a name taken
twice is INVALID_ARGUMENT STEP_EXISTS naming the step, never INTERNAL."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.errors import StepExists
from spoold.model import NewJob
from spoold.store.database import translated
from tests.api.support import Stub
from tests.helpers import enqueue_request, expect_error
from tests.pipelines.support import PStub, request, step


async def test_the_table_refuses_a_second_step_of_one_name(pipes: PStub, db: asyncpg.Connection) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b")))).pipeline
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await db.execute("UPDATE spool.jobs SET step_name = 'a' WHERE pipeline_id = $1 AND step_name = 'b'", int(p.id))
    assert raised.value.constraint_name == "jobs_pipeline_step_name_idx"


async def test_a_write_the_index_refuses_is_step_exists(app: App, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a")))).pipeline
    with pytest.raises(StepExists) as raised, translated():
        async with app.store.pool.acquire() as conn, conn.transaction():
            await app.store.insert_in(conn, [NewJob(queue="q", payload=b"{}")], (int(p.id), ["a"], ["{}"], [0]))
    assert raised.value.reason == "STEP_EXISTS" and raised.value.field == "step_name"


async def test_two_acks_adding_one_step_name_one_wins_and_the_other_is_named(stub: Stub, pipes: PStub) -> None:
    # Raced in twelve pipelines at once: each pair of acks also locks both parents (named_steps),
    # which deadlocked (answered UNAVAILABLE) when each ack held its own row before the pipeline.
    runs = [_race_for_one_name(stub, pipes, f"q{i}") for i in range(12)]
    for refused, got in await asyncio.gather(*runs):
        await expect_error(_raise(refused), grpc.StatusCode.INVALID_ARGUMENT, "STEP_EXISTS", "follow_ups[0].step_name")
        assert "'join'" in (refused.details() or "")
        assert sorted(s.name for s in got.steps) == ["a", "b", "join"]


async def _race_for_one_name(stub: Stub, pipes: PStub, queue: str) -> tuple[grpc.aio.AioRpcError, ps.Pipeline]:
    p = (await pipes.EnqueuePipeline(request(step("a", queue), step("b", queue)))).pipeline
    first, second = (await stub.Lease(qs.LeaseRequest(queues=[queue], max_jobs=2))).jobs
    join = qs.FollowUp(job=enqueue_request("x"), step_name="join", depends_on=["a", "b"])

    def acking(leased: qs.LeasedJob) -> qs.AckRequest:
        return qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, follow_ups=[join])

    answers = await asyncio.gather(stub.Ack(acking(first)), stub.Ack(acking(second)), return_exceptions=True)
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert len(refused) == 1, answers
    return refused[0], (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline


async def _raise(exc: BaseException) -> None:
    raise exc
