"""Background loops outlive their failures: a database fault is retried with a capped, jittered
backoff; a bug is logged on every run and turns health NOT_SERVING; a loop that cannot complete
a run for the stall timeout turns it NOT_SERVING too. None of them ends the loop or the process."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.errors import Unavailable
from spoold.leasing import Leaser
from spoold.loops import Loop, ReadyPoller, Reaper, Watchdog
from spoold.model import LeaseRequest, NewJob
from spoold.notify import Listener
from spoold.store.database import create_pool
from spoold.store.jobs import JobStore
from spoold.store.ready import ReadyStore
from spoold.store.rows import JobRow
from tests import conftest
from tests.faults.conftest import kill_held_connection
from tests.faults.proxy import FaultProxy
from tests.helpers import enqueue_request, expect_error


class Flaky(Loop):
    """Raises `error` while it is set; counts the runs that got through."""

    name = "flaky"

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(interval, backoff_max=0.05)
        self.error: Exception | None = None

    async def run_once(self) -> int:
        if self.error is not None:
            raise self.error
        return 0


class Health:
    """What the watchdog last said."""

    def __init__(self) -> None:
        self.serving: list[bool] = []

    async def set(self, serving: bool) -> None:
        self.serving.append(serving)


async def test_a_bug_is_logged_on_every_run_and_holds_health_down_until_a_run_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop, health = Flaky(), Health()
    watchdog = Watchdog([loop], stall_timeout=60, set_serving=health.set)
    loop.error = TypeError("unsupported operand")
    task = loop.start()
    try:
        with caplog.at_level(logging.ERROR, logger="spoold.loops.base"):
            await conftest.wait_until(lambda: loop.failures >= 3)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
        assert len(errors) >= 3, "each failure of a bug is logged, with its traceback"
        assert not task.done()
        await watchdog.run_once()
        assert health.serving == [False]
        assert loop.stats().broken and "TypeError" in (loop.stats().last_error or "")

        loop.error = None
        await conftest.wait_until(lambda: loop.runs >= 1)
        await watchdog.run_once()
        assert health.serving == [False, True]
        assert loop.failing == 0 and loop.failures >= 3
    finally:
        await loop.stop()
    assert task.done() and task.exception() is None


async def test_a_database_fault_is_retried_quietly_until_the_loop_stalls(caplog: pytest.LogCaptureFixture) -> None:
    loop, health = Flaky(), Health()
    watchdog = Watchdog([loop], stall_timeout=30, set_serving=health.set)
    loop.error = Unavailable("database unavailable")
    with caplog.at_level(logging.WARNING, logger="spoold.loops.base"):
        task = loop.start()
        try:
            await conftest.wait_until(lambda: loop.failures >= 3)
            now = time.monotonic()
            assert not loop.stats().broken
            assert watchdog.unwell(now) == [], "a fault of the database's is not a bug"
            assert [s.name for s in watchdog.unwell(now + 30)] == ["flaky"], "but a loop stuck on it is stalled"
            loop.error = None
            await conftest.wait_until(lambda: loop.runs >= 1)
            assert watchdog.unwell(time.monotonic() + 30) == []
        finally:
            await loop.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, "the first failure of a run of faults has its traceback, the rest one line"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert task.exception() is None


async def test_a_hung_run_stalls_the_loop() -> None:
    hang = asyncio.Event()

    class Hung(Loop):
        async def run_once(self) -> int:
            await hang.wait()
            return 0

    loop = Hung(interval=0.01)
    watchdog = Watchdog([loop], stall_timeout=5, set_serving=Health().set)
    loop.start()
    try:
        await conftest.wait_until(lambda: loop.stats().stalled_for > 0)
        assert watchdog.unwell(time.monotonic() + 5)
    finally:
        hang.set()
        await loop.stop()


def test_retries_back_off_from_the_interval_doubling_to_a_cap_with_jitter() -> None:
    loop = Flaky(interval=1.0)
    loop.backoff_max = 5.0
    for failing, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 4: (2.5, 5), 50: (2.5, 5)}.items():
        loop.failing = failing
        delays = [loop.retry_delay() for _ in range(200)]
        assert low <= min(delays) and max(delays) <= high, failing
        assert max(delays) - min(delays) > (high - low) / 4, "jittered"
    slow = Flaky(interval=60.0)  # the pruner: never sooner than its own interval's half
    slow.failing = 3
    assert all(30 <= slow.retry_delay() <= 60 for _ in range(100))


async def test_the_reaper_survives_a_terminated_connection_and_reaps_after_it(
    proxy: FaultProxy, db: asyncpg.Connection
) -> None:
    """The connection is terminated between runs, as it is whenever the reaper is idle (nearly
    always): the backend's FATAL error then waits in the socket, and the next run finds the
    connection broken (InternalClientError). Killed in the middle of a run's statement instead, the
    error answers that statement but the end of the query that the client waits for never comes
    while the proxy holds the socket: a pool without a command timeout, as this test's, would wait
    for ever; spoold's pools end such a statement after statement_timeout + 5 s (store/database.py)."""
    pool = await create_pool(proxy.url, 1, 1)
    store = JobStore(pool)
    reaper = Reaper(store, interval=0.02, batch=100)
    await reaper.run_once()  # the pool's one connection has served a reaper run
    await kill_held_connection(proxy, db)  # ...and is killed while no statement is in flight
    task = reaper.start()
    try:
        await conftest.wait_until(lambda: reaper.failures >= 1)
        assert "InternalClientError" in (reaper.last_error or "")
        proxy.release()
        assert not task.done(), task

        (enqueued,) = await store.enqueue([NewJob(queue="q", payload=b"{}", max_attempts=2)])
        (claimed,) = await store.claim(LeaseRequest(("q",), 1, timedelta(seconds=30), timedelta(0), None))
        await db.execute("UPDATE spool.jobs SET lease_expires_at = now() WHERE id = $1", claimed["id"])

        async def reaped() -> bool:
            return await db.fetchval("SELECT state FROM spool.jobs WHERE id = $1", claimed["id"]) == "pending"

        await conftest.wait_until(reaped)
        assert enqueued.row["id"] == claimed["id"]
    finally:
        proxy.release()
        await reaper.stop()
        await pool.close()
    assert task.exception() is None


async def test_the_shared_long_poll_probe_survives_a_terminated_connection_and_wakes_after_it(
    proxy: FaultProxy, db: asyncpg.Connection
) -> None:
    pool = await create_pool(proxy.url, 1, 1)
    store = JobStore(pool)
    leaser = Leaser(store, Listener(proxy.url), poll_interval=0.02)  # never started: no NOTIFY
    poller = ReadyPoller(ReadyStore(pool), leaser, interval=0.02)
    claims: list[object] = []
    claim = store.claim

    async def counted(req: LeaseRequest) -> list[JobRow]:
        claims.append(await claim(req))
        return claims[-1]  # type: ignore[return-value]

    store.claim = counted  # type: ignore[method-assign]
    waiter = asyncio.create_task(leaser.lease(LeaseRequest(("q",), 1, None, timedelta(seconds=60), "w")))
    task = poller.start()
    try:
        # The waiter made its first claim (found nothing) and waits on the probe alone.
        await conftest.wait_until(lambda: len(claims) == 1 and poller.runs >= 1)
        proxy.refuse = True
        proxy.cut()  # the database goes away, in the middle of a probe or between two
        await conftest.wait_until(lambda: poller.failures >= 1)
        proxy.refuse = False
        assert not task.done(), task

        await db.execute("SELECT spool.enqueue(queue => 'q', payload => '{}')")  # no NOTIFY listens
        (job,) = await asyncio.wait_for(waiter, 30)
        assert job["queue"] == "q" and poller.woken >= 1
    finally:
        proxy.refuse = False
        leaser.close()
        await poller.stop()
        await pool.close()
    assert task.exception() is None


async def _health(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(answer.status)


async def test_a_database_outage_turns_health_down_after_the_stall_timeout_and_up_after_it(proxy: FaultProxy) -> None:
    settings = conftest.test_settings(
        reaper_interval=timedelta(milliseconds=50),
        loop_backoff_max=timedelta(milliseconds=100),
        loop_stall_timeout=timedelta(seconds=1),
        pool_acquire_timeout=timedelta(seconds=1),
    )
    app = App(settings, proxy.url)
    await app.start()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = queue_service_pb2_grpc.QueueServiceStub(channel)
            job = (await stub.Enqueue(enqueue_request("q"))).job
            assert await _health(channel) == serving
            proxy.refuse = True
            proxy.cut()
            await expect_error(
                stub.GetJob(qs.GetJobRequest(job_id=job.id)), grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"
            )
            await conftest.wait_until(lambda: _is(channel, not_serving))
            assert not any(t.done() for t in app.tasks), "no loop ended"
            proxy.refuse = False
            await conftest.wait_until(lambda: _is(channel, serving))
            assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.id == job.id
    finally:
        await app.stop()


async def _is(channel: grpc.aio.Channel, status: int) -> bool:
    return await _health(channel) == status
