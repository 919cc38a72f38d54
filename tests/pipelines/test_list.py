"""ListPipelines: newest first, keyset pages with tamper-checked tokens, filters by state, paused
flag and name prefix, and a restricted key sees only the pipelines whose every step it may read."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, lease_one
from tests.auth.conftest import bearer, make_key
from tests.conftest import test_settings as make_settings
from tests.helpers import enqueue_request, expect_error
from tests.pipelines.support import PStub, ack, request, step

P = ps.Pipeline
BAD = grpc.StatusCode.INVALID_ARGUMENT


async def names(pipes: PStub, **fields: object) -> list[str]:
    answer = await pipes.ListPipelines(ps.ListPipelinesRequest(**fields))  # type: ignore[arg-type]
    return [p.name for p in answer.pipelines]


async def test_pages_newest_first_to_the_end(pipes: PStub) -> None:
    for i in range(5):
        await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",)), name=f"p{i}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await pipes.ListPipelines(ps.ListPipelinesRequest(page_size=2, page_token=token))
        assert len(page.pipelines) <= 2
        seen += [p.name for p in page.pipelines]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["p4", "p3", "p2", "p1", "p0"]
    first = (await pipes.ListPipelines(ps.ListPipelinesRequest(page_size=1))).pipelines[0]
    assert (first.step_count, first.succeeded_steps, len(first.steps)) == (2, 0, 0)
    assert first.state == P.STATE_RUNNING


async def test_filters_by_state_paused_and_name_prefix(stub: Stub, pipes: PStub) -> None:
    done = (await pipes.EnqueuePipeline(request(step("only", "done-q"), name="export-done"))).pipeline
    await ack(stub, await lease_one(stub, "done-q"))
    failed = (await pipes.EnqueuePipeline(request(step("only", "fail-q"), name="export-failed"))).pipeline
    leased = await lease_one(stub, "fail-q")
    nack = qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, retryable=False)
    nack.error.message = "no"
    await stub.Nack(nack)
    cancelled = (await pipes.EnqueuePipeline(request(step("only", "c-q"), name="import-cancelled"))).pipeline
    await pipes.CancelPipeline(ps.CancelPipelineRequest(pipeline_id=cancelled.id))
    paused = (await pipes.EnqueuePipeline(request(step("only", "p-q"), name="import-paused"))).pipeline
    await pipes.PausePipeline(ps.PausePipelineRequest(pipeline_id=paused.id))
    await pipes.EnqueuePipeline(request(step("only", "r-q"), name="import-running"))

    assert await names(pipes, states=[P.STATE_SUCCEEDED]) == ["export-done"]
    assert await names(pipes, states=[P.STATE_FAILED, P.STATE_CANCELLED]) == ["import-cancelled", "export-failed"]
    assert await names(pipes, states=[P.STATE_RUNNING]) == ["import-running", "import-paused"]
    assert await names(pipes, paused=True) == ["import-paused"]
    assert await names(pipes, states=[P.STATE_RUNNING], paused=False) == ["import-running"]
    assert await names(pipes, name_prefix="export-") == ["export-failed", "export-done"]
    assert await names(pipes, name_prefix="%") == []  # a prefix, not a pattern
    got = (await pipes.ListPipelines(ps.ListPipelinesRequest(name_prefix="export-d"))).pipelines[0]
    assert (got.id, got.step_count, got.succeeded_steps) == (done.id, 1, 1)
    assert failed.id


async def test_bad_requests_name_their_field(pipes: PStub) -> None:
    for i in range(3):
        await pipes.EnqueuePipeline(request(step("a"), name=f"p{i}"))
    token = (await pipes.ListPipelines(ps.ListPipelinesRequest(page_size=1))).next_page_token
    assert token
    lists = pipes.ListPipelines
    await expect_error(lists(ps.ListPipelinesRequest(page_token="nope")), BAD, "INVALID_ARGUMENT", "page_token")
    edited = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    await expect_error(lists(ps.ListPipelinesRequest(page_token=edited)), BAD, "INVALID_ARGUMENT", "page_token")
    other = ps.ListPipelinesRequest(page_size=1, page_token=token, states=[P.STATE_FAILED])
    await expect_error(lists(other), BAD, "INVALID_ARGUMENT", "page_token")
    await expect_error(lists(ps.ListPipelinesRequest(page_size=1001)), BAD, "INVALID_ARGUMENT", "page_size")
    await expect_error(
        lists(ps.ListPipelinesRequest(states=[P.STATE_UNSPECIFIED])), BAD, "INVALID_ARGUMENT", "states[0]"
    )
    await expect_error(
        lists(ps.ListPipelinesRequest(states=[P.STATE_RUNNING, 99])), BAD, "INVALID_ARGUMENT", "states[1]"
    )
    await expect_error(lists(ps.ListPipelinesRequest(name_prefix="x" * 129)), BAD, "INVALID_ARGUMENT", "name_prefix")
    await expect_error(lists(ps.ListPipelinesRequest(name_prefix="a\x00")), BAD, "INVALID_ARGUMENT", "name_prefix")


@pytest.mark.parametrize("settings", [make_settings(auth="required")])
async def test_a_restricted_key_lists_only_pipelines_it_may_read(pipes: PStub, db: asyncpg.Connection) -> None:
    admin = bearer(await make_key(db, ["admin", "read", "enqueue"]))
    await pipes.EnqueuePipeline(request(step("a", "mail-in"), step("b", "mail-out"), name="mail"), metadata=admin)
    await pipes.EnqueuePipeline(request(step("a", "mail-in"), step("b", "billing"), name="mixed"), metadata=admin)
    await pipes.EnqueuePipeline(request(step("a", "billing"), name="bills"), metadata=admin)
    reader = bearer(await make_key(db, ["read"], ["mail-*"]))
    seen = await pipes.ListPipelines(ps.ListPipelinesRequest(), metadata=reader)
    assert [p.name for p in seen.pipelines] == ["mail"]
    assert len((await pipes.ListPipelines(ps.ListPipelinesRequest(), metadata=admin)).pipelines) == 3
    worker = bearer(await make_key(db, ["work"]))
    await expect_error(
        pipes.ListPipelines(ps.ListPipelinesRequest(), metadata=worker),
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_MISSING",
    )


@pytest.mark.parametrize("settings", [make_settings(auth="required")])
async def test_a_watch_ends_not_found_once_a_step_leaves_the_keys_queues(
    stub: Stub, pipes: PStub, db: asyncpg.Connection
) -> None:
    admin = bearer(await make_key(db, ["admin", "read", "enqueue", "work"]))
    p = (await pipes.EnqueuePipeline(request(step("a", "mail-in"), name="mail"), metadata=admin)).pipeline
    reader = bearer(await make_key(db, ["read"], ["mail-*"]))
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id), metadata=reader)
    assert isinstance(await call.read(), ps.WatchPipelineResponse)
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["mail-in"]), metadata=admin)).jobs
    secret = qs.FollowUp(job=enqueue_request("billing"), step_name="bill", depends_on=["a"])
    ack = qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, follow_ups=[secret])
    await stub.Ack(ack, metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            msg = await call.read()
            assert msg is not grpc.aio.EOF, "the stream ended OK, showing a step the key may not read"
            assert isinstance(msg, ps.WatchPipelineResponse)
            assert all(s.job.queue.startswith("mail-") for s in msg.pipeline.steps)
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND
