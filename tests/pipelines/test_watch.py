"""WatchPipeline over real gRPC: every step first, then its changes (with real Workers), ending once
the pipeline is finished; follow-up steps appear; a slow reader is coalesced; the watcher cap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

import spool
from spool import step as spec
from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from tests.api.support import Stub, lease_one
from tests.client.conftest import serving
from tests.conftest import test_settings as make_settings
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error
from tests.pipelines.support import PStub, ack, request, step

J = job_pb2.Job
P = ps.Pipeline
Call = grpc.aio.UnaryStreamCall  # type: ignore[type-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings(watch_poll_interval=timedelta(milliseconds=200), watch_buffer=4)


async def read(call: Call) -> ps.WatchPipelineResponse:
    msg = await call.read()
    assert msg is not grpc.aio.EOF, "stream ended early"
    assert isinstance(msg, ps.WatchPipelineResponse)
    return msg


class Seen:
    """Each step's states as the stream showed them, repeats folded."""

    def __init__(self) -> None:
        self.states: dict[str, list[int]] = {}
        self.last: ps.Pipeline | None = None

    def add(self, msg: ps.WatchPipelineResponse) -> None:
        self.last = msg.pipeline
        for s in msg.pipeline.steps:
            got = self.states.setdefault(s.name, [])
            if not got or got[-1] != s.job.state:
                got.append(s.job.state)

    def now(self, name: str) -> int:
        return self.states[name][-1]


async def read_until(call: Call, seen: Seen, done) -> None:  # type: ignore[no-untyped-def]
    while not done():
        seen.add(await read(call))


async def test_steps_go_waiting_pending_running_succeeded_with_real_workers(
    client: spool.AsyncClient, pipes: PStub
) -> None:
    released = {"first": asyncio.Event(), "second": asyncio.Event()}
    workers = [spool.Worker(client, concurrency=2, poll_wait=timedelta(seconds=1)) for _ in range(2)]

    @workers[0].handler("qa")
    async def first(job: spool.ActiveJob) -> int:
        await released["first"].wait()
        return 1

    @workers[1].handler("qb")
    async def second(job: spool.ActiveJob) -> int:
        await released["second"].wait()
        return int(job.parents["first"]) + 1

    p = await client.pipeline("watched", [spec("first", "qa"), spec("second", "qb", after=["first"])])
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    snapshot = await read(call)
    assert snapshot.snapshot and [s.name for s in snapshot.pipeline.steps] == ["first", "second"]
    seen = Seen()
    seen.add(snapshot)
    async with serving(workers[0]):
        await read_until(call, seen, lambda: seen.now("first") == J.STATE_RUNNING)
        released["first"].set()
        await read_until(call, seen, lambda: seen.now("second") == J.STATE_PENDING)
    async with serving(workers[1]):
        await read_until(call, seen, lambda: seen.now("second") == J.STATE_RUNNING)
        released["second"].set()
        while (msg := await call.read()) is not grpc.aio.EOF:
            assert isinstance(msg, ps.WatchPipelineResponse) and not msg.snapshot
            seen.add(msg)
    assert await call.code() == grpc.StatusCode.OK
    assert seen.states["first"] == [J.STATE_PENDING, J.STATE_RUNNING, J.STATE_SUCCEEDED]
    assert seen.states["second"] == [J.STATE_WAITING, J.STATE_PENDING, J.STATE_RUNNING, J.STATE_SUCCEEDED]
    assert seen.last is not None and seen.last.state == P.STATE_SUCCEEDED and seen.last.succeeded_steps == 2


async def test_a_later_message_carries_only_what_changed_and_new_steps(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b"), step("c", after=("a", "b"))))).pipeline
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    assert len((await read(call)).pipeline.steps) == 3
    a = await lease_one(stub, "q")
    running = await read(call)
    assert [(s.name, s.job.state) for s in running.pipeline.steps] == [(a.job.step_name, J.STATE_RUNNING)]
    follow = qs.FollowUp(job=enqueue_request("later"), step_name="extra", depends_on=["c"])
    await stub.Ack(qs.AckRequest(job_id=a.job.id, lease_token=a.lease_token, follow_ups=[follow]))
    seen = Seen()
    await read_until(call, seen, lambda: "extra" in seen.states)
    assert seen.states["extra"] == [J.STATE_WAITING]
    assert seen.last is not None and seen.last.step_count == 4
    call.cancel()


async def test_a_cancelled_pipeline_ends_the_stream(pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))).pipeline
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    assert (await read(call)).pipeline.state == P.STATE_RUNNING
    await pipes.CancelPipeline(ps.CancelPipelineRequest(pipeline_id=p.id))
    seen = Seen()
    while (msg := await call.read()) is not grpc.aio.EOF:
        assert isinstance(msg, ps.WatchPipelineResponse)
        seen.add(msg)
    assert seen.last is not None and seen.last.state == P.STATE_CANCELLED
    assert await call.code() == grpc.StatusCode.OK
    again = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))  # finished: one snapshot, the end
    assert (await read(again)).snapshot
    assert await again.read() is grpc.aio.EOF


async def test_unknown_and_malformed_ids(pipes: PStub) -> None:
    missing = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id="999999"))
    await expect_error(missing.read(), grpc.StatusCode.NOT_FOUND, "PIPELINE_NOT_FOUND", "pipeline_id")
    bad = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id="x"))
    await expect_error(bad.read(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "pipeline_id")


# 2,000 checkpoints of one job in a tight loop: without the checkpoint rate limit.
@pytest.mark.parametrize(
    "settings",
    [
        make_settings(
            watch_poll_interval=timedelta(milliseconds=200), watch_buffer=4, checkpoint_min_interval=timedelta(0)
        )
    ],
)
async def test_a_slow_reader_is_coalesced_to_its_bound(app: App, stub: Stub, pipes: PStub, settings: Settings) -> None:
    # Big snapshots fill the HTTP/2 window after a few messages, so the server must hold the rest.
    big = {"blob": "x" * 64 * 1024}
    p = (await pipes.EnqueuePipeline(request(step("only", payload=big)))).pipeline
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    await read(call)  # then read nothing while 2,000 changes happen
    leased = await lease_one(stub, "q")
    hub = app.pipeline_hub
    assert hub is not None
    await wait_until(lambda: len(hub.mailboxes(int(p.id))) == 1)
    (mailbox,) = hub.mailboxes(int(p.id))
    most = 0
    for i in range(2000):
        beat = qs.HeartbeatRequest(job_id=leased.job.id, lease_token=leased.lease_token, checkpoint=str(i).encode())
        await stub.Heartbeat(beat)
        most = max(most, len(mailbox))
    await ack(stub, leased)
    await wait_until(lambda: mailbox.coalesced > 0 and len(mailbox) > 0)
    assert most <= settings.watch_buffer == mailbox.bound
    received = []
    while (msg := await call.read()) is not grpc.aio.EOF:
        assert isinstance(msg, ps.WatchPipelineResponse)
        received.append(msg.pipeline)
    assert received[-1].state == P.STATE_SUCCEEDED and received[-1].steps[0].job.checkpoint == b"1999"
    assert len(received) < 2000  # coalesced, not queued
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("settings", [make_settings(max_watchers=1)])
async def test_pipeline_and_job_streams_share_the_watcher_cap(stub: Stub, pipes: PStub) -> None:
    p = (await pipes.EnqueuePipeline(request(step("a")))).pipeline
    job = qs.WatchJobRequest(job_id=p.steps[0].job.id)
    held = stub.WatchJob(job)
    assert await held.read() is not grpc.aio.EOF
    refused = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    await expect_error(refused.read(), grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCHERS_LIMIT_REACHED")
    held.cancel()
    await wait_until(lambda: _opens(pipes, p.id))


async def _opens(pipes: PStub, pipeline_id: str) -> bool:
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=pipeline_id))
    try:
        return isinstance(await call.read(), ps.WatchPipelineResponse)
    except grpc.aio.AioRpcError:
        return False
    finally:
        call.cancel()


async def test_the_python_client_merges_the_changes_into_whole_pipelines(client: spool.AsyncClient, stub: Stub) -> None:
    p = await client.pipeline("merged", [spec("a", "mq"), spec("b", "mq", after=["a"])])
    seen: list[ps.Pipeline] = []

    async def follow() -> None:
        async for now in client.pipelines.watch(p.id):
            seen.append(now)

    watching = asyncio.create_task(follow())
    await wait_until(lambda: len(seen) == 1)
    for _ in range(2):
        await ack(stub, await lease_one(stub, "mq"))
    await asyncio.wait_for(watching, 30)
    assert all([s.name for s in now.steps] == ["a", "b"] for now in seen)  # every step, every time
    assert [s.job.state for s in seen[-1].steps] == [J.STATE_SUCCEEDED, J.STATE_SUCCEEDED]
    assert seen[-1].state == P.STATE_SUCCEEDED
    listed = [x.id async for x in client.pipelines.list(["succeeded"], name_prefix="merged")]
    assert listed == [p.id]
