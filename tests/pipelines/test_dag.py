"""EnqueuePipeline, the WAITING state, and steps freed by their parents' acks, over gRPC."""

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


async def test_steps_wait_for_their_parents_and_get_their_results(stub: Stub, pipes: PStub) -> None:
    made = await pipes.EnqueuePipeline(
        request(step("extract"), step("render", after=("extract",)), step("upload", after=("render",)))
    )
    p = made.pipeline
    assert p.id and p.state == ps.Pipeline.STATE_RUNNING and not made.deduplicated
    steps = by_name(p)
    assert [s.job.state for s in p.steps] == [Job.STATE_PENDING, Job.STATE_WAITING, Job.STATE_WAITING]
    assert list(steps["render"].depends_on) == ["extract"]
    assert steps["upload"].job.pipeline_id == p.id and steps["upload"].job.step_name == "upload"
    first = await lease_one(stub, "q")
    assert first.job.step_name == "extract" and not first.parents
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5))).jobs  # the rest wait
    await ack(stub, first, {"rows": 3})
    second = await lease_one(stub, "q")
    assert second.job.step_name == "render"
    assert json.loads(second.parents["extract"].result) == {"rows": 3}
    assert second.parents["extract"].job_id == first.job.id
    await ack(stub, second, "pdf")
    third = await lease_one(stub, "q")
    await ack(stub, third)
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert got.state == ps.Pipeline.STATE_SUCCEEDED
    assert all(s.job.state == Job.STATE_SUCCEEDED and len(s.job.attempts) == 1 for s in got.steps)


async def test_fan_out_and_fan_in(stub: Stub, pipes: PStub) -> None:
    fan = [step(f"part{i}", after=("split",)) for i in range(5)]
    join = step("join", after=[f"part{i}" for i in range(5)])
    p = (await pipes.EnqueuePipeline(request(step("split"), *fan, join))).pipeline
    await ack(stub, await lease_one(stub, "q"))
    parts = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10))).jobs
    assert sorted(j.job.step_name for j in parts) == [f"part{i}" for i in range(5)]
    for i, leased in enumerate(parts):
        assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs
        await ack(stub, leased, i)
    join = await lease_one(stub, "q")
    assert join.job.step_name == "join" and len(join.parents) == 5
    await ack(stub, join)
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert got.state == ps.Pipeline.STATE_SUCCEEDED


async def test_list_jobs_by_pipeline_and_waiting_status(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))).pipeline
    await stub.Enqueue(qs.EnqueueRequest(queue="q", payload=b"{}"))
    listed = await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(pipeline_id=p.id)))
    assert sorted(j.step_name for j in listed.jobs) == ["a", "b"]
    waiting = await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[Job.STATUS_WAITING])))
    assert [j.step_name for j in waiting.jobs] == ["b"]
    by_state = await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(states=[Job.STATE_WAITING])))
    assert [j.step_name for j in by_state.jobs] == ["b"]


async def test_idempotency_key_returns_the_first_pipeline(pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    first = await pipes.EnqueuePipeline(request(step("a"), idempotency_key="order-5"))
    again = await pipes.EnqueuePipeline(request(step("a"), step("b"), idempotency_key="order-5"))
    assert again.deduplicated and again.pipeline.id == first.pipeline.id and len(again.pipeline.steps) == 1
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 1


async def test_bad_dags_are_refused_naming_the_step_and_write_nothing(pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    bad = grpc.StatusCode.INVALID_ARGUMENT
    cases = [
        (request(step("a"), step("a")), "steps[1].name", "'a'"),
        (request(step("a"), step("b", after=("nope",))), "steps[1].depends_on", "'nope'"),
        (request(step("a", after=("c",)), step("b", after=("a",)), step("c", after=("b",))), None, "cycle"),
        (request(step("a", after=("a",))), "steps[0].depends_on", "itself"),
        (request(*[step(f"s{i}") for i in range(10_001)]), "steps", "over the limit of 10000"),
        (request(), "steps", "at least one"),
        (request(step("")), "steps[0].name", "name"),
        (request(step("a", idempotency_key="k")), "steps[0].job.idempotency_key", "'a'"),
        (request(step("a", queue="")), "steps[0].job.queue", "queue"),
        (request(step("a"), name=""), "name", "name"),
    ]
    for req, field, text in cases:
        err = await expect_error(pipes.EnqueuePipeline(req), bad, "INVALID_ARGUMENT", field)
        assert text in (err.details() or ""), err.details()
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0
    assert await db.fetchval("SELECT count(*) FROM spool.pipelines") == 0


async def test_unknown_pipeline_is_not_found(pipes: PStub) -> None:
    await expect_error(
        pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id="999")), grpc.StatusCode.NOT_FOUND, "PIPELINE_NOT_FOUND"
    )
    await expect_error(
        pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id="x")), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
