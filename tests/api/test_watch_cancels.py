"""WatchCancels: a worker's stream hears CancelJob on its running jobs at once, and only on its own."""

from __future__ import annotations

import asyncio

import grpc

from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.api.support import Stub, lease_one
from tests.conftest import wait_until
from tests.helpers import expect_error


async def watching(
    app: App, stub: Stub, worker_id: str
) -> grpc.aio.UnaryStreamCall[qs.WatchCancelsRequest, qs.WatchCancelsResponse]:
    call = stub.WatchCancels(qs.WatchCancelsRequest(worker_id=worker_id))
    registered = await asyncio.wait_for(call.read(), 10)
    assert isinstance(registered, qs.WatchCancelsResponse) and registered.job_id == ""
    assert app.cancels is not None and app.cancels.streams(worker_id) >= 1
    return call


async def test_cancel_job_reaches_the_stream_of_the_worker_holding_it(app: App, stub: Stub) -> None:
    mine = (await stub.Enqueue(qs.EnqueueRequest(queue="c", payload=b"{}"))).job
    theirs = (await stub.Enqueue(qs.EnqueueRequest(queue="c", payload=b"{}"))).job
    pending = (await stub.Enqueue(qs.EnqueueRequest(queue="c", payload=b"{}"))).job
    first = await lease_one(stub, "c", worker_id="w-mine")
    second = await lease_one(stub, "c", worker_id="w-theirs")
    assert {first.job.id, second.job.id} == {mine.id, theirs.id}
    mine_id, theirs_id = first.job.id, second.job.id

    call = await watching(app, stub, "w-mine")
    # Another worker's job and a PENDING job are not this stream's business; then its own job.
    await stub.CancelJob(qs.CancelJobRequest(job_id=theirs_id))
    await stub.CancelJob(qs.CancelJobRequest(job_id=pending.id))
    await stub.CancelJob(qs.CancelJobRequest(job_id=mine_id))
    heard = await asyncio.wait_for(call.read(), 10)
    assert isinstance(heard, qs.WatchCancelsResponse)
    assert heard.job_id == mine_id
    call.cancel()
    assert app.cancels is not None
    await wait_until(lambda: app.cancels is not None and app.cancels.streams("w-mine") == 0)


async def test_every_stream_of_the_worker_hears_it(app: App, stub: Stub) -> None:
    await stub.Enqueue(qs.EnqueueRequest(queue="c", payload=b"{}"))
    leased = await lease_one(stub, "c", worker_id="w")
    calls = [await watching(app, stub, "w") for _ in range(2)]
    await wait_until(lambda: app.cancels is not None and app.cancels.streams("w") == 2)
    await stub.CancelJob(qs.CancelJobRequest(job_id=leased.job.id))
    for call in calls:
        heard = await asyncio.wait_for(call.read(), 10)
        assert isinstance(heard, qs.WatchCancelsResponse) and heard.job_id == leased.job.id
        call.cancel()


async def test_a_worker_id_is_required(stub: Stub) -> None:
    call = stub.WatchCancels(qs.WatchCancelsRequest())
    await expect_error(call.read(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "worker_id")
