"""Follow-ups carried by an Ack: created in the ack's transaction, refused with a stale ack."""

from __future__ import annotations

import grpc

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, expire_lease, lease_one, reaper
from tests.helpers import enqueue_request, expect_error
from tests.pipelines.support import PStub, ack, by_name, request, step

Job = job_pb2.Job


def follow(queue: str, name: str = "", after: tuple[str, ...] = ()) -> qs.FollowUp:
    return qs.FollowUp(job=enqueue_request(queue, {"made": name or queue}), step_name=name, depends_on=list(after))


def ack_with(leased: qs.LeasedJob, *follow_ups: qs.FollowUp) -> qs.AckRequest:
    return qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, follow_ups=list(follow_ups))


async def test_an_ack_creates_its_follow_up_jobs(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("first"))
    leased = await lease_one(stub, "first")
    done = await stub.Ack(ack_with(leased, follow("second"), follow("third")))
    assert done.job.state == Job.STATE_SUCCEEDED
    assert [j.queue for j in done.follow_ups] == ["second", "third"]
    assert (await lease_one(stub, "second")).job.id == done.follow_ups[0].id


async def test_a_step_adds_a_fan_out_and_its_join(app, stub: Stub, pipes: PStub) -> None:  # type: ignore[no-untyped-def]
    p = (await pipes.EnqueuePipeline(request(step("split")))).pipeline
    split = await lease_one(stub, "q")
    parts = [follow("parts", f"part{i}", ("split",)) for i in range(3)]
    join = follow("joins", "join", tuple(f"part{i}" for i in range(3)))
    done = await stub.Ack(ack_with(split, *parts, join))
    assert [j.state for j in done.follow_ups] == [Job.STATE_PENDING] * 3 + [Job.STATE_WAITING]
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert list(by_name(got)["join"].depends_on) == ["part0", "part1", "part2"]
    assert got.state == ps.Pipeline.STATE_RUNNING
    for leased in (await stub.Lease(qs.LeaseRequest(queues=["parts"], max_jobs=5))).jobs:
        assert leased.parents["split"].job_id == split.job.id
        await ack(stub, leased, leased.job.step_name)
    joined = await lease_one(stub, "joins")
    assert {k: v.result for k, v in joined.parents.items()} == {f"part{i}": f'"part{i}"'.encode() for i in range(3)}
    await ack(stub, joined)
    got = (await pipes.GetPipeline(ps.GetPipelineRequest(pipeline_id=p.id))).pipeline
    assert got.state == ps.Pipeline.STATE_SUCCEEDED and len(got.steps) == 5


async def test_a_stale_acks_follow_ups_are_refused_with_it(app, stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("first", max_attempts=2))
    stale = await lease_one(stub, "first")
    await expire_lease(db, stale.job.id)
    await reaper(app).run_once()
    await db.execute("UPDATE spool.jobs SET run_at = now() WHERE id = $1", int(stale.job.id))
    fresh = await lease_one(stub, "first")
    await expect_error(stub.Ack(ack_with(stale, follow("second"))), grpc.StatusCode.FAILED_PRECONDITION, "LEASE_LOST")
    batch = qs.AckBatchRequest(acks=[ack_with(stale, follow("second"))])
    answer = await stub.AckBatch(batch)
    assert answer.results[0].error.reason == "LEASE_LOST"
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'second'") == 0
    answer = await stub.AckBatch(qs.AckBatchRequest(acks=[ack_with(fresh, follow("second"))]))
    assert not answer.results[0].HasField("error")
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'second'") == 1


async def test_bad_follow_ups_refuse_the_ack_and_change_nothing(stub: Stub, pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("plain"))
    plain = await lease_one(stub, "plain")
    bad = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(stub.Ack(ack_with(plain, follow("x", "s"))), bad, "INVALID_ARGUMENT", "follow_ups[0].step_name")
    await expect_error(
        stub.Ack(ack_with(plain, follow("x", "", ("a",)))), bad, "INVALID_ARGUMENT", "follow_ups[0].depends_on"
    )
    await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))
    a = await lease_one(stub, "q")
    await expect_error(stub.Ack(ack_with(a, follow("x", "b"))), bad, "STEP_EXISTS", "follow_ups[0].step_name")
    await expect_error(
        stub.Ack(ack_with(a, follow("x", "c", ("nope",)))), bad, "INVALID_ARGUMENT", "follow_ups[0].depends_on"
    )
    states = await db.fetch(
        "SELECT state FROM spool.jobs WHERE id = ANY($1::bigint[])", [int(plain.job.id), int(a.job.id)]
    )
    assert [r["state"] for r in states] == ["running", "running"], "a refused ack is not applied"
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'x'") == 0
