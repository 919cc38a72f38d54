"""WatchJob over real gRPC: snapshot, changes, end; two servers on one database; slow watchers;
lost notifications; shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.app import App
from spoold.config import Settings
from tests.conftest import test_settings as make_settings
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error

State = job_pb2.Job.State
FULL = FieldMask(paths=["payload", "attempts"])


@pytest.fixture
def settings() -> Settings:
    return make_settings(watch_poll_interval=timedelta(milliseconds=200), watch_buffer=4)


async def lease_one(stub: QueueServiceStub, queue: str = "default") -> qs.LeasedJob:
    leased = await stub.Lease(qs.LeaseRequest(queues=[queue], worker_id="w1"))
    assert len(leased.jobs) == 1
    return leased.jobs[0]


async def read(call: grpc.aio.UnaryStreamCall) -> qs.WatchJobResponse:  # type: ignore[type-arg]
    msg = await call.read()
    assert msg is not grpc.aio.EOF, "stream ended early"
    assert isinstance(msg, qs.WatchJobResponse)
    return msg


async def read_until(call: grpc.aio.UnaryStreamCall, done) -> qs.WatchJobResponse:  # type: ignore[no-untyped-def,type-arg]
    """Reads until a message satisfies `done` (intermediate states may be coalesced)."""
    while True:
        msg = await read(call)
        if done(msg.job):
            return msg


async def test_snapshot_then_each_change_then_ok(stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id, read_mask=FULL))
    first = await read(call)
    assert first.job.id == job.id and first.job.state == State.STATE_PENDING
    assert list(first.job.attempts) == [] and first.HasField("observed_at")

    lj = await lease_one(stub)
    running = await read(call)
    assert running.job.state == State.STATE_RUNNING and running.job.attempt == 1
    assert running.job.worker_id == "w1" and running.job.HasField("lease_expires_at")
    assert [a.number for a in running.job.attempts] == [1]

    await stub.Heartbeat(qs.HeartbeatRequest(job_id=job.id, lease_token=lj.lease_token, checkpoint=b"half"))
    beat = await read(call)
    assert beat.job.checkpoint == b"half" and beat.job.state == State.STATE_RUNNING

    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=lj.lease_token, result=b'{"ok":1}'))
    done = await read(call)
    assert done.job.state == State.STATE_SUCCEEDED and done.job.result == b'{"ok":1}'
    assert [a.outcome for a in done.job.attempts] == [job_pb2.Attempt.OUTCOME_SUCCEEDED]
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_retry_and_error_reach_the_watcher(stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request(max_attempts=2))).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(call)
    lj = await lease_one(stub)
    await stub.Nack(
        qs.NackRequest(
            job_id=job.id,
            lease_token=lj.lease_token,
            error=job_pb2.JobError(type="Boom", message="first"),
        )
    )
    retrying = await read_until(call, lambda j: j.state == State.STATE_PENDING and j.attempt == 1)
    assert retrying.job.last_error.type == "Boom"
    await stub.CancelJob(qs.CancelJobRequest(job_id=job.id))
    cancelled = await read_until(call, lambda j: j.state != State.STATE_PENDING)
    assert cancelled.job.state == State.STATE_CANCELLED
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_finished_job_gives_its_snapshot_and_ends(stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    await stub.CancelJob(qs.CancelJobRequest(job_id=job.id))
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    assert (await read(call)).job.state == State.STATE_CANCELLED
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_unknown_job_is_not_found(stub: QueueServiceStub) -> None:
    call = stub.WatchJob(qs.WatchJobRequest(job_id="987654321"))
    await expect_error(call.read(), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")


@pytest.mark.parametrize("job_id", ["", "abc", "-1", "0", "1" * 30, "1\x00", "٣"])
async def test_malformed_id_is_invalid_argument(stub: QueueServiceStub, job_id: str) -> None:
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job_id))
    await expect_error(call.read(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "job_id")


async def test_several_watchers_of_one_job_each_get_every_state(app: App, stub: QueueServiceStub) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    calls = [stub.WatchJob(qs.WatchJobRequest(job_id=job.id)) for _ in range(5)]
    for call in calls:
        assert (await read(call)).job.state == State.STATE_PENDING
    lj = await lease_one(stub)
    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=lj.lease_token))
    for call in calls:
        assert (await read_until(call, lambda j: j.state != State.STATE_RUNNING)).job.state == State.STATE_SUCCEEDED
        assert await call.read() is grpc.aio.EOF
    assert app.hub is not None
    await wait_until(lambda: not app.hub.mailboxes(int(job.id)))  # type: ignore[union-attr]


async def test_watched_rows_follow_the_watchers(app: App, stub: QueueServiceStub, db: asyncpg.Connection) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(call)
    assert await db.fetchval("SELECT count(*) FROM spool.watched WHERE job_id = $1", int(job.id)) == 1
    call.cancel()

    async def unregistered() -> bool:
        return await db.fetchval("SELECT count(*) FROM spool.watched") == 0

    await wait_until(unregistered)


async def test_lost_notification_costs_only_a_poll(stub: QueueServiceStub, db: asyncpg.Connection) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await read(call)
    # Without its spool.watched row the trigger sends nothing: only the poll can see the change.
    await db.execute("DELETE FROM spool.watched")
    await stub.CancelJob(qs.CancelJobRequest(job_id=job.id))
    assert (await read(call)).job.state == State.STATE_CANCELLED
    assert await call.read() is grpc.aio.EOF


@pytest.fixture
async def second_app(db_url: str, settings: Settings) -> AsyncIterator[App]:
    other = App(settings, db_url)
    await other.start()
    try:
        yield other
    finally:
        await other.stop()


async def test_watcher_on_one_server_sees_changes_made_through_another(stub: QueueServiceStub, second_app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second_app.port}") as ch:
        other = QueueServiceStub(ch)
        job = (await stub.Enqueue(enqueue_request())).job
        call = other.WatchJob(qs.WatchJobRequest(job_id=job.id))
        assert (await read(call)).job.state == State.STATE_PENDING
        lj = await lease_one(stub)
        assert (await read(call)).job.state == State.STATE_RUNNING
        await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=lj.lease_token))
        assert (await read(call)).job.state == State.STATE_SUCCEEDED
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


# 2,000 checkpoints of one job in a tight loop: without the checkpoint rate limit.
@pytest.mark.parametrize(
    "settings",
    [
        make_settings(
            watch_poll_interval=timedelta(milliseconds=200), watch_buffer=4, checkpoint_min_interval=timedelta(0)
        )
    ],
)
async def test_slow_watcher_is_coalesced_to_its_bound(app: App, stub: QueueServiceStub, settings: Settings) -> None:
    # Big snapshots fill the HTTP/2 window after a few messages, so the server must hold the rest.
    big = {"blob": "x" * 64 * 1024}
    job = (await stub.Enqueue(enqueue_request(payload=big, max_attempts=2))).job
    call = stub.WatchJob(qs.WatchJobRequest(job_id=job.id, read_mask=FULL))
    await read(call)  # then read nothing while 2,000 changes happen
    lj = await lease_one(stub)
    assert app.hub is not None
    await wait_until(lambda: len(app.hub.mailboxes(int(job.id))) == 1)  # type: ignore[union-attr]
    (mailbox,) = app.hub.mailboxes(int(job.id))
    most = 0
    for i in range(2000):
        await stub.Heartbeat(qs.HeartbeatRequest(job_id=job.id, lease_token=lj.lease_token, checkpoint=str(i).encode()))
        most = max(most, len(mailbox))
    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=lj.lease_token))
    await wait_until(lambda: mailbox.coalesced > 0 and len(mailbox) > 0)
    assert most <= settings.watch_buffer == mailbox.bound
    received = []
    while (msg := await call.read()) is not grpc.aio.EOF:
        assert isinstance(msg, qs.WatchJobResponse)
        received.append(msg.job)
        assert len(mailbox) <= mailbox.bound
    assert received[-1].state == State.STATE_SUCCEEDED and received[-1].checkpoint == b"1999"
    assert len(received) < 2000  # coalesced, not queued
    checkpoints = [int(j.checkpoint) for j in received if j.checkpoint]
    assert checkpoints == sorted(checkpoints)  # in order, never a stale state after a newer one
    assert await call.code() == grpc.StatusCode.OK
    assert json.loads(received[-1].payload)["blob"] == big["blob"]


async def test_shutdown_ends_streams_unavailable(db_url: str, settings: Settings) -> None:
    server = App(settings, db_url)
    await server.start()
    stopped = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = QueueServiceStub(ch)
            job = (await stub.Enqueue(enqueue_request())).job
            calls = [stub.WatchJob(qs.WatchJobRequest(job_id=job.id)) for _ in range(3)]
            for call in calls:
                await read(call)
            await server.stop()
            stopped = True
            for call in calls:
                await expect_error(call.read(), grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
    finally:
        if not stopped:
            await server.stop()
