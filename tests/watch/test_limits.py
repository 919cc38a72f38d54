"""Streams and connections are bounded: watchers per process, streams per connection, RPCs per
process, a connection's age; and a watch snapshot carries the payload and attempts only on request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.app import App
from tests.api.support import seconds
from tests.conftest import test_settings as make_settings
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error
from tests.watch.test_watch import lease_one, read

BIG = {"blob": "x" * 100_000}


def streams(app: App) -> int:
    assert app.hub is not None
    return app.hub.streams


async def test_a_snapshot_leaves_out_payload_and_attempts_unless_asked(stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request(payload=BIG))).job
    await lease_one(stub)
    plain = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    first = (await read(plain)).job
    assert first.state == first.STATE_RUNNING and first.payload == b"" and not first.attempts
    assert first.attempts_total == 1 and first.content_type == "application/json"
    plain.cancel()
    full = stub.WatchJob(qs.WatchJobRequest(job_id=job.id, read_mask=FieldMask(paths=["payload", "attempts"])))
    got = (await read(full)).job
    assert len(got.payload) > 100_000 and [a.number for a in got.attempts] == [1]
    full.cancel()
    only = stub.WatchJob(qs.WatchJobRequest(job_id=job.id, read_mask=FieldMask(paths=["attempts"])))
    got = (await read(only)).job
    assert got.payload == b"" and len(got.attempts) == 1
    only.cancel()


async def test_a_read_mask_names_only_what_it_can(stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    bad = qs.WatchJobRequest(job_id=job.id, read_mask=FieldMask(paths=["payload", "secret"]))
    call = stub.WatchJob(bad)
    await expect_error(read(call), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "read_mask.paths[1]")


@pytest.mark.parametrize("settings", [make_settings(max_watchers=2)])
async def test_watchers_past_the_cap_are_refused_until_one_leaves(app: App, stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    first, second = (stub.WatchJob(qs.WatchJobRequest(job_id=job.id)) for _ in range(2))
    await read(first)
    await read(second)
    await wait_until(lambda: streams(app) == 2)
    third = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    err = await expect_error(read(third), grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCHERS_LIMIT_REACHED")
    assert "SPOOL_MAX_WATCHERS" in (err.details() or "")
    first.cancel()
    await wait_until(lambda: streams(app) == 1)
    fourth = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    assert (await read(fourth)).job.id == job.id
    second.cancel()
    fourth.cancel()


@pytest.mark.parametrize("settings", [make_settings(max_watchers=3)])
async def test_tail_and_cancel_streams_count_against_the_same_cap(app: App, stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    watch = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(watch)
    cancels = stub.WatchCancels(qs.WatchCancelsRequest(worker_id="w"))
    await cancels.read()  # the first message: registered
    tail = stub.TailJobs(qs.TailJobsRequest())
    await wait_until(lambda: streams(app) == 3)  # a tail says nothing until an event
    for refused in (
        stub.TailJobs(qs.TailJobsRequest()),
        stub.WatchCancels(qs.WatchCancelsRequest(worker_id="w2")),
        stub.WatchJob(qs.WatchJobRequest(job_id=job.id)),
    ):
        err = await expect_error(refused.read(), grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCHERS_LIMIT_REACHED")
        assert "SPOOL_MAX_WATCHERS" in (err.details() or "")
    tail.cancel()
    await wait_until(lambda: streams(app) == 2)
    again = stub.WatchCancels(qs.WatchCancelsRequest(worker_id="w3"))
    assert (await again.read()).job_id == ""
    for call in (watch, cancels, again):
        call.cancel()
    await wait_until(lambda: streams(app) == 0)


@pytest.fixture
async def second_channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    # A connection of its own: channels to one address otherwise share their connections.
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.port}", options=[("grpc.use_local_subchannel_pool", 1)]
    ) as ch:
        yield ch


@pytest.mark.parametrize("settings", [make_settings(grpc_max_concurrent_streams=3)])
async def test_one_connection_holds_at_most_its_streams(
    app: App, stub: QueueServiceStub, second_channel: grpc.aio.Channel
) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    calls = [stub.WatchJob(qs.WatchJobRequest(job_id=job.id)) for _ in range(5)]
    reads = [asyncio.ensure_future(read(c)) for c in calls]
    await wait_until(lambda: sum(r.done() for r in reads) == 3)
    # Another connection is served at once, while the first's last two streams still wait.
    other = QueueServiceStub(second_channel).WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(other)
    assert streams(app) == 4 and sum(r.done() for r in reads) == 3
    for c in calls[:2]:
        c.cancel()
    await wait_until(lambda: all(r.done() for r in reads))  # their places are taken by the waiting two
    for c in (*calls, other):
        c.cancel()


@pytest.mark.parametrize("settings", [make_settings(grpc_max_concurrent_rpcs=2)])
async def test_rpcs_past_the_process_limit_are_refused(app: App, stub: QueueServiceStub) -> None:
    polls = [asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["none"], wait=seconds(30)))) for _ in range(2)]
    assert app.leaser is not None
    await wait_until(lambda: len(app.leaser._waiting) == 2)  # type: ignore[union-attr]  # both long polls served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Lease(qs.LeaseRequest(queues=["none"]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for p in polls:
        p.cancel()


@pytest.mark.parametrize(
    "settings",
    [
        make_settings(
            grpc_max_connection_age=timedelta(milliseconds=500), grpc_max_connection_age_grace=timedelta(seconds=1)
        )
    ],
)
async def test_a_connection_is_closed_past_its_age(app: App, channel: grpc.aio.Channel, stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(call)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()  # the stream outlives age + grace: the server ends it
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.id == job.id  # a new connection serves
