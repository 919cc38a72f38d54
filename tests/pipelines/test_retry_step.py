"""Fix and resume (RetryStep): a failed step runs again with an edited payload, finished steps keep
their results; with downstream, the steps after it run again too."""

from __future__ import annotations

import json

import grpc

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, lease_one
from tests.helpers import expect_error
from tests.pipelines.support import PStub, ack, by_name, request, step

Job = job_pb2.Job
R = ps.RetryStepRequest


async def _dead(stub: Stub, leased: qs.LeasedJob) -> None:
    error = job_pb2.JobError(type="Bad", message="bad input")
    await stub.Nack(qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, error=error, retryable=False))


async def test_fix_and_resume_with_an_edited_payload(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",)), step("c", after=("b",))))).pipeline
    await ack(stub, await lease_one(stub, "q"), "A")
    b = await lease_one(stub, "q")
    await _dead(stub, b)
    fixed = (await pipes.RetryStep(R(job_id=b.job.id, payload=b'{"fixed": true}'))).pipeline
    assert fixed.state == ps.Pipeline.STATE_RUNNING
    again = await lease_one(stub, "q")
    assert again.job.id == b.job.id and json.loads(again.job.payload) == {"fixed": True}
    assert again.parents["a"].result == b'"A"', "the finished step kept its result"
    await ack(stub, again, "B")
    await ack(stub, await lease_one(stub, "q"), "C")
    done = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert done.state == ps.Pipeline.STATE_SUCCEEDED
    assert [len(s.job.attempts) for s in done.steps] == [1, 2, 1], "a ran once"


async def test_retry_with_downstream_runs_the_later_steps_again(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",)), step("c", after=("b",))))).pipeline
    for value in ("A", "B", "C"):
        await ack(stub, await lease_one(stub, "q"), value)
    b = by_name((await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline)["b"].job
    await expect_error(pipes.RetryStep(R(job_id=b.id)), grpc.StatusCode.FAILED_PRECONDITION, "WRONG_STATE", "job_id")
    got = (await pipes.RetryStep(R(job_id=b.id, mode=R.MODE_DOWNSTREAM))).pipeline
    assert [s.job.state for s in got.steps] == [Job.STATE_SUCCEEDED, Job.STATE_PENDING, Job.STATE_WAITING]
    assert by_name(got)["c"].job.state == Job.STATE_WAITING
    await ack(stub, await lease_one(stub, "q"), "B2")
    c = await lease_one(stub, "q")
    assert c.job.step_name == "c" and c.parents["b"].result == b'"B2"'
    await ack(stub, c, "C2")
    done = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert done.state == ps.Pipeline.STATE_SUCCEEDED
    assert [len(s.job.attempts) for s in done.steps] == [1, 2, 2]


async def test_retry_refusals(stub: Stub, pipes: PStub) -> None:
    await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))
    a = await lease_one(stub, "q")
    failed = grpc.StatusCode.FAILED_PRECONDITION
    await expect_error(pipes.RetryStep(R(job_id=a.job.id)), failed, "WRONG_STATE", "job_id")
    await expect_error(
        pipes.RetryStep(R(job_id=a.job.id, payload=b"{not json")), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    plain = (await stub.Enqueue(qs.EnqueueRequest(queue="p", payload=b"{}"))).job
    await expect_error(pipes.RetryStep(R(job_id=plain.id)), failed, "WRONG_STATE", "job_id")
    await expect_error(pipes.RetryStep(R(job_id="999999")), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
