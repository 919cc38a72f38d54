"""Idle Lease long polls share one probe per poll interval (loops/ready.py) instead of each
claiming every interval; the probe wakes only the waiters of queues that have work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from spoold.leasing import Leaser
from spoold.loops import ReadyPoller
from spoold.model import LeaseRequest, NewJob
from spoold.notify import READY, Listener
from spoold.store.database import create_pool
from spoold.store.jobs import JobStore
from spoold.store.ready import ReadyStore
from spoold.store.rows import JobRow
from tests import conftest
from tests.api.support import Stub, seconds
from tests.helpers import enqueue_request


@dataclass
class Rig:
    """A Leaser whose shared poll the test drives (run_once), and no NOTIFY: the listener is never
    started, so only the probe wakes a waiter. `claims` counts the claims the waiters make."""

    store: JobStore
    leaser: Leaser
    listener: Listener
    poller: ReadyPoller
    probe: ReadyStore
    claims: int = 0

    def lease(self, *queues: str) -> asyncio.Task[list[JobRow]]:
        req = LeaseRequest(queues, 1, timedelta(seconds=30), timedelta(seconds=60), "w")
        return asyncio.create_task(self.leaser.lease(req))

    async def settled(self, claims: int) -> None:
        """Until the waiters made `claims` claims in all and none is running."""
        await conftest.wait_until(lambda: self.claims == claims and self.store.queued == 0)
        for _ in range(10):  # the claims' callers get their (empty) answers and wait again
            await asyncio.sleep(0)


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    pool = await create_pool(db_url, 1, 4)
    store = JobStore(pool)
    listener = Listener(db_url)
    leaser = Leaser(store, listener, poll_interval=0.05)
    probe = ReadyStore(pool)
    r = Rig(store, leaser, listener, ReadyPoller(probe, leaser, interval=0.05), probe)
    claim = store.claim

    async def counted(req: LeaseRequest) -> list[JobRow]:
        r.claims += 1
        return await claim(req)

    store.claim = counted  # type: ignore[method-assign]
    try:
        yield r
    finally:
        leaser.close()
        await pool.close()


async def test_many_waiters_on_one_queue_set_make_one_probe_per_round_and_no_claims(rig: Rig) -> None:
    waiters = [rig.lease("a", "b") for _ in range(50)]
    await conftest.wait_until(lambda: rig.leaser.waiting == 50)
    await rig.settled(50)  # each waiter's first claim
    for _ in range(3):
        await rig.poller.run_once()
    assert rig.probe.probes == 3, "one probe per round, whatever the number of waiters"
    await rig.settled(50)
    assert rig.poller.woken == 0 and not any(w.done() for w in waiters)

    await rig.store.enqueue([NewJob(queue="b", payload=b"{}")])  # no NOTIFY reaches this leaser
    await rig.poller.run_once()
    assert rig.poller.woken == 50
    await conftest.wait_until(lambda: sum(w.done() for w in waiters) == 1)
    await rig.settled(100)  # one claim each: the winner's, and 49 that found nothing

    await rig.poller.run_once()  # nothing left: the losers wait, and claim no more
    await rig.settled(100)
    assert rig.poller.woken == 50 and rig.leaser.waiting == 49
    (won,) = [w.result() for w in waiters if w.done()]
    assert len(won) == 1


async def test_the_probe_wakes_only_the_waiters_of_queues_with_work(rig: Rig) -> None:
    on_a, on_b = rig.lease("a"), rig.lease("b", "c")
    await conftest.wait_until(lambda: rig.leaser.waiting == 2)
    await rig.settled(2)
    await rig.store.enqueue([NewJob(queue="c", payload=b"{}")])
    await rig.poller.run_once()
    assert rig.poller.woken == 1
    assert len(await on_b) == 1
    await rig.settled(3)
    assert not on_a.done()


async def test_without_waiters_the_probe_asks_nothing(rig: Rig) -> None:
    await rig.poller.run_once()
    assert rig.probe.probes == 0


async def test_a_cancelled_waiting_lease_leaves_nothing_behind(rig: Rig) -> None:
    waiter = rig.lease("a", "b")
    await conftest.wait_until(lambda: rig.leaser.waiting == 1)
    await rig.settled(1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert rig.leaser.waiting == 0 and rig.leaser.waited_queues() == []
    assert rig.listener.subscriber_count(READY) == 0
    await rig.poller.run_once()
    assert rig.probe.probes == 0


@pytest.fixture(params=[True, False], ids=["shared", "per-waiter"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return conftest.test_settings(lease_poll_interval=timedelta(milliseconds=100), lease_shared_poll=request.param)


async def test_idle_waiters_get_scheduled_jobs_when_they_come_due(app: App, stub: Stub) -> None:
    queues = ("s1", "s2", "s3")
    waiters = [
        asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=[q], max_jobs=1, wait=seconds(30)), timeout=60))
        for q in queues
        for _ in range(4)
    ]
    await conftest.wait_until(lambda: app.leaser is not None and app.leaser.waiting == len(waiters))
    assert any(isinstance(loop, ReadyPoller) for loop in app.loops) == app.settings.lease_shared_poll
    due = Timestamp()
    due.FromDatetime(datetime.now(UTC) + timedelta(milliseconds=300))
    for q in queues:
        for _ in range(4):
            await stub.Enqueue(enqueue_request(q, run_at=due))  # not ready yet: no NOTIFY
    got = await asyncio.gather(*waiters)
    assert sorted(j.job.queue for r in got for j in r.jobs) == sorted(q for q in queues for _ in range(4))
