"""A dead step fails its pipeline and holds its descendants; Requeue resumes it; CancelPipeline;
the on_failure step; two parents acked at once in two transactions."""

from __future__ import annotations

import asyncio

import grpc

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, lease_one
from tests.helpers import expect_error
from tests.pipelines.support import PStub, ack, by_name, request, step

Job = job_pb2.Job
P = ps.Pipeline


async def _get(pipes: PStub, pipeline_id: str) -> ps.Pipeline:
    return (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=pipeline_id))).pipeline


async def _fail(stub: Stub, leased: qs.LeasedJob) -> None:
    error = job_pb2.JobError(type="Boom", message="no")
    await stub.Nack(qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, error=error, retryable=False))


async def test_dead_step_fails_the_pipeline_and_requeue_resumes_it(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",)), step("c", after=("b",))))).pipeline
    await ack(stub, await lease_one(stub, "q"), 1)
    b = await lease_one(stub, "q")
    await _fail(stub, b)
    got = await _get(pipes, p.id)
    assert got.state == P.STATE_FAILED
    assert [s.job.state for s in got.steps] == [Job.STATE_SUCCEEDED, Job.STATE_DEAD, Job.STATE_WAITING]
    await stub.Requeue(qs.RequeueRequest(job_ids=[b.job.id]))
    assert (await _get(pipes, p.id)).state == P.STATE_RUNNING
    again = await lease_one(stub, "q")
    assert again.job.step_name == "b" and again.parents["a"].result == b"1"
    await ack(stub, again)
    await ack(stub, await lease_one(stub, "q"))
    got = await _get(pipes, p.id)
    assert got.state == P.STATE_SUCCEEDED
    assert [len(s.job.attempts) for s in got.steps] == [1, 2, 1]
    # A step that succeeded never runs again.
    await expect_error(
        stub.Requeue(qs.RequeueRequest(job_ids=[got.steps[0].job.id], include_succeeded=True)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
    )


async def test_cancel_pipeline_cancels_unfinished_steps_and_flags_running_ones(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b"), step("c", after=("a", "b"))))).pipeline
    running = await lease_one(stub, "q")
    got = (await pipes.CancelPipeline(ps.CancelPipelineRequest(pipeline_id=p.id))).pipeline
    assert got.state == P.STATE_CANCELLED
    states = {s.name: (s.job.state, s.job.cancel_requested) for s in got.steps}
    other = "b" if running.job.step_name == "a" else "a"
    assert states[running.job.step_name] == (Job.STATE_RUNNING, True)
    assert states[other] == (Job.STATE_CANCELLED, True) and states["c"] == (Job.STATE_CANCELLED, True)
    beat = await stub.Heartbeat(qs.HeartbeatRequest(job_id=running.job.id, lease_token=running.lease_token))
    assert beat.cancel_requested
    await ack(stub, running)  # a running step that finishes anyway frees nothing: its children are cancelled
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5))).jobs
    assert (await _get(pipes, p.id)).state == P.STATE_CANCELLED


async def test_on_failure_step_runs_once_with_the_failed_step(stub: Stub, pipes: PStub) -> None:
    req = request(step("a"), step("b", after=("a",)), on_failure=step("alert", queue="alerts"))
    p = (await pipes.EnqueuePipeline(req)).pipeline
    assert by_name(p)["alert"].on_failure and by_name(p)["alert"].job.state == Job.STATE_WAITING
    a = await lease_one(stub, "q")
    await _fail(stub, a)
    alert = await lease_one(stub, "alerts")
    assert alert.job.step_name == "alert"
    assert alert.parents["a"].state == Job.STATE_DEAD and alert.parents["a"].error.type == "Boom"
    await ack(stub, alert)
    got = await _get(pipes, p.id)
    assert got.state == P.STATE_FAILED and by_name(got)["b"].job.state == Job.STATE_WAITING


async def test_on_failure_step_stays_waiting_when_the_pipeline_succeeds(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), on_failure=step("alert", queue="alerts")))).pipeline
    await ack(stub, await lease_one(stub, "q"))
    got = await _get(pipes, p.id)
    assert got.state == P.STATE_SUCCEEDED and by_name(got)["alert"].job.state == Job.STATE_WAITING


async def test_parents_acked_at_once_free_the_join_exactly_once(stub: Stub, pipes: PStub) -> None:
    for _ in range(10):
        parents = [step(f"p{i}") for i in range(8)]
        await pipes.EnqueuePipeline(request(*parents, step("join", queue="joins", after=[f"p{i}" for i in range(8)])))
        leased = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=8))).jobs
        assert len(leased) == 8
        # Separate Ack calls race in separate statements and transactions.
        await asyncio.gather(*(ack(stub, j) for j in leased))
        joins = (await stub.Lease(qs.LeaseRequest(queues=["joins"], max_jobs=5))).jobs
        assert len(joins) == 1 and len(joins[0].parents) == 8
        await ack(stub, joins[0])


async def test_parents_acked_in_one_statement_count_once_each(stub: Stub, pipes: PStub) -> None:
    # One AckBatch is one ack statement: its trigger frees the children of all its steps at once
    # (migration 0026), counting each child's parents that finished in it.
    for name in ("x", "y"):
        parts = [step(f"{name}{i}") for i in range(3)]
        await pipes.EnqueuePipeline(
            request(*parts, step("join", queue="joins", after=[p.name for p in parts]), name=name)
        )
    leased = list((await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=6))).jobs)
    assert len(leased) == 6
    first = [j for j in leased if not j.job.step_name.endswith("2")]
    last = [j for j in leased if j.job.step_name.endswith("2")]

    def batch(jobs: list[qs.LeasedJob]) -> qs.AckBatchRequest:
        return qs.AckBatchRequest(acks=[qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in jobs])

    assert all(not r.HasField("error") for r in (await stub.AckBatch(batch(first))).results)
    assert not (await stub.Lease(qs.LeaseRequest(queues=["joins"], max_jobs=5))).jobs
    await stub.AckBatch(batch(last))
    joins = (await stub.Lease(qs.LeaseRequest(queues=["joins"], max_jobs=5))).jobs
    assert sorted(len(j.parents) for j in joins) == [3, 3]
