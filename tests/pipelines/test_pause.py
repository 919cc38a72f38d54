"""Pause and resume one pipeline run: nothing new is dispatched while paused, running steps finish."""

from __future__ import annotations

import grpc

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, lease_one
from tests.helpers import expect_error
from tests.pipelines.support import PStub, ack, by_name, request, step

Job = job_pb2.Job


async def test_a_paused_run_dispatches_nothing_until_resumed(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",)), step("c", queue="other")))).pipeline
    a = await lease_one(stub, "q")
    paused = (await pipes.PausePipeline(ps.PausePipelineRequest(pipeline_id=p.id))).pipeline
    assert paused.paused and paused.state == ps.Pipeline.STATE_RUNNING
    assert by_name(paused)["c"].job.state == Job.STATE_WAITING, "the ready step is parked"
    assert by_name(paused)["a"].job.state == Job.STATE_RUNNING, "the running step goes on"
    await ack(stub, a, 1)
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q", "other"], max_jobs=5))).jobs
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert by_name(got)["b"].job.state == Job.STATE_WAITING
    resumed = (await pipes.ResumePipeline(ps.ResumePipelineRequest(pipeline_id=p.id))).pipeline
    assert not resumed.paused
    assert {s.name: s.job.state for s in resumed.steps} == {
        "a": Job.STATE_SUCCEEDED,
        "b": Job.STATE_PENDING,
        "c": Job.STATE_PENDING,
    }
    for leased in (await stub.Lease(qs.LeaseRequest(queues=["q", "other"], max_jobs=5))).jobs:
        await ack(stub, leased)
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert got.state == ps.Pipeline.STATE_SUCCEEDED


async def test_pausing_an_unknown_pipeline_is_not_found(pipes: PStub) -> None:
    await expect_error(
        pipes.PausePipeline(ps.PausePipelineRequest(pipeline_id="77")), grpc.StatusCode.NOT_FOUND, "PIPELINE_NOT_FOUND"
    )


async def test_a_step_requeued_in_a_paused_run_waits_for_the_resume(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a", max_attempts=1)))).pipeline
    a = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=a.job.id, lease_token=a.lease_token, retryable=False))
    await pipes.PausePipeline(ps.PausePipelineRequest(pipeline_id=p.id))
    (requeued,) = (await stub.Requeue(qs.RequeueRequest(job_ids=[a.job.id]))).jobs
    assert requeued.state == Job.STATE_WAITING
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs
    await pipes.ResumePipeline(ps.ResumePipelineRequest(pipeline_id=p.id))
    assert (await lease_one(stub, "q")).job.id == a.job.id
