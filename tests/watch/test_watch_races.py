"""WatchJob's fan-out under racing streams: a stream whose join waits on the database while another
stream joins the same job and leaves still follows the job to its end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

import asyncpg
import pytest

from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.app import App
from spoold.model import Job
from spoold.watch import WatchPoller
from tests.helpers import enqueue_request


async def test_a_stream_that_joins_while_another_joins_and_leaves_sees_the_end(
    app: App, stub: QueueServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = app.hub
    assert hub is not None
    job_id = int((await stub.Enqueue(enqueue_request("raced"))).job.id)
    watches = hub._watches  # the real WatchStore: its first register is held until released
    real_register = watches.register
    held, release = asyncio.Event(), asyncio.Event()

    async def register(job_ids: Collection[int]) -> None:
        if not held.is_set():
            held.set()
            await release.wait()
        await real_register(job_ids)

    monkeypatch.setattr(watches, "register", register)

    first: AsyncIterator[Job] = hub.follow(job_id)
    first_state = asyncio.ensure_future(anext(first))  # creates the job's entry, then waits in register
    await asyncio.wait_for(held.wait(), 10)
    second = hub.follow(job_id)  # joins that entry, reads the job, and leaves
    assert (await asyncio.wait_for(anext(second), 10)).state.value == "pending"
    await second.aclose()
    release.set()

    assert (await asyncio.wait_for(first_state, 10)).state.value == "pending"
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["raced"], worker_id="w"))).jobs
    await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token))
    states = []
    async with asyncio.timeout(15):  # NOTIFY, or the next poll at the latest
        async for job in first:
            states.append(job.state.value)
    assert states[-1] == "succeeded", states


async def test_a_stream_that_joins_while_its_job_is_unregistered_keeps_its_row(
    app: App, stub: QueueServiceStub, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = app.hub
    assert hub is not None
    # This test runs the hub's poll itself: the server's own poll would race it to the left job.
    await next(loop for loop in app.loops if isinstance(loop, WatchPoller)).stop()
    job_id = int((await stub.Enqueue(enqueue_request("rejoined"))).job.id)
    gone: AsyncIterator[Job] = hub.follow(job_id)
    await asyncio.wait_for(anext(gone), 10)
    await gone.aclose()  # the job is now left for the poll to unregister

    watches = hub._watches  # the real WatchStore: the unregister is held until a new stream registered
    real_unregister = watches.unregister
    held, release = asyncio.Event(), asyncio.Event()

    async def unregister(job_ids: Collection[int]) -> None:
        if job_id in job_ids and not held.is_set():
            held.set()
            await release.wait()
        await real_unregister(job_ids)

    monkeypatch.setattr(watches, "unregister", unregister)
    poll = asyncio.ensure_future(hub.poll_once())
    await asyncio.wait_for(held.wait(), 10)
    again = hub.follow(job_id)  # joins afresh and registers while the delete waits
    assert (await asyncio.wait_for(anext(again), 10)).state.value == "pending"
    release.set()
    await asyncio.wait_for(poll, 10)

    assert await db.fetchval("SELECT count(*) FROM spool.watched WHERE job_id = $1", job_id) == 1
    await again.aclose()
