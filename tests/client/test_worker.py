"""spool.Worker end to end against a live spoold: retries, checkpoints, heartbeats, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest

import spool
from spool.v1 import job_pb2
from spoold.app import App
from spoold.config import Settings
from tests.client.conftest import serving
from tests.conftest import test_settings as settings_for_tests
from tests.conftest import wait_until

Job = job_pb2.Job
Attempt = job_pb2.Attempt
FAST = spool.Backoff(kind="fixed", initial=timedelta(milliseconds=50), jitter=False)


@pytest.fixture
def settings() -> Settings:
    # The reaper runs often, so a lease left without heartbeats would really expire here.
    return settings_for_tests(reaper_interval=timedelta(milliseconds=100))


def make_worker(client: spool.AsyncClient, **options: object) -> spool.Worker:
    options.setdefault("poll_wait", timedelta(seconds=2))
    return spool.Worker(client, **options)  # type: ignore[arg-type]


async def wait_state(client: spool.AsyncClient, job_id: str, state: int, within: float = 20) -> Job:
    async def reached() -> bool:
        return (await client.get(job_id)).state == state

    await wait_until(reached, within=within)
    return await client.get(job_id)


async def test_a_failing_handler_is_retried_with_backoff_then_dead_with_its_traceback(
    client: spool.AsyncClient,
) -> None:
    worker = make_worker(client)

    @worker.handler("flaky")
    async def explode(job: spool.ActiveJob) -> None:
        raise ValueError(f"boom on attempt {job.attempt}")

    job = await client.enqueue("flaky", {"n": 1}, max_attempts=3, backoff=FAST)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_DEAD)

    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_FAILED] * 3
    assert done.last_error.type == "ValueError"
    assert done.last_error.message == "boom on attempt 3"
    assert "Traceback (most recent call last)" in done.last_error.details
    assert "in explode" in done.last_error.details
    for before, after in zip(done.attempts, done.attempts[1:], strict=False):
        gap = after.started_at.ToDatetime() - before.finished_at.ToDatetime()
        assert gap >= timedelta(milliseconds=50), "the next attempt waited out the backoff"


async def test_retry_and_permanent_choose_the_path(client: spool.AsyncClient) -> None:
    worker = make_worker(client)

    @worker.handler("paths")
    def decide(job: spool.ActiveJob) -> str:
        if job.json()["kind"] == "permanent":
            raise spool.Permanent("bad input, never retry")
        if job.attempt == 1:
            raise spool.Retry("not yet", after=timedelta(milliseconds=10))
        return "ok"

    permanent = await client.enqueue("paths", {"kind": "permanent"}, max_attempts=5)
    retried = await client.enqueue("paths", {"kind": "retry"}, max_attempts=2)
    async with serving(worker):
        dead = await wait_state(client, permanent.id, Job.STATE_DEAD)
        ok = await wait_state(client, retried.id, Job.STATE_SUCCEEDED)

    assert len(dead.attempts) == 1 and dead.last_error.type == "spool.job.Permanent"
    assert [a.outcome for a in ok.attempts] == [Attempt.OUTCOME_FAILED, Attempt.OUTCOME_SUCCEEDED]
    assert spool.payload_json(ok) == {"kind": "retry"} and ok.result == b'"ok"'


async def test_a_checkpoint_survives_a_crash_and_the_next_attempt_resumes_from_it(
    client: spool.AsyncClient,
) -> None:
    worker = make_worker(client, lease_duration=timedelta(milliseconds=600))
    seen: list[object] = []
    stored = threading.Event()

    @worker.handler("resumable")
    def work(job: spool.ActiveJob) -> dict[str, object]:  # a sync handler, run in a thread
        seen.append(job.previous_checkpoint)
        if job.attempt == 1:
            job.checkpoint({"done": 3})
            if not stored.wait(10):
                raise AssertionError("the heartbeat never stored the checkpoint")
            raise RuntimeError("crash after checkpointing")
        return {"resumed_from": job.previous_checkpoint}

    job = await client.enqueue("resumable", {"items": 5}, max_attempts=2, backoff=FAST)
    async with serving(worker):

        async def checkpoint_stored() -> bool:
            return (await client.get(job.id)).checkpoint == b'{"done":3}'

        await wait_until(checkpoint_stored)  # by a heartbeat, while the handler still runs
        stored.set()
        done = await wait_state(client, job.id, Job.STATE_SUCCEEDED)

    assert seen == [None, {"done": 3}]
    assert spool.payload_json(done) == {"items": 5}
    assert done.result == b'{"resumed_from":{"done":3}}'
    assert done.attempts[0].error.type == "RuntimeError"


async def test_a_checkpoint_set_just_before_a_crash_travels_with_the_nack(client: spool.AsyncClient) -> None:
    worker = make_worker(client)
    seen: list[object] = []

    @worker.handler("resumable")
    async def work(job: spool.ActiveJob) -> None:
        seen.append(job.previous_checkpoint)
        if job.attempt == 1:
            job.checkpoint(b"\x00raw")
            raise RuntimeError("crash")

    job = await client.enqueue("resumable", {}, max_attempts=2, backoff=FAST)
    async with serving(worker):
        await wait_state(client, job.id, Job.STATE_SUCCEEDED)
    assert seen == [None, b"\x00raw"]


async def test_a_long_handler_stays_leased_by_heartbeats(client: spool.AsyncClient) -> None:
    worker = make_worker(client, lease_duration=timedelta(milliseconds=600))
    handler_done = asyncio.Event()

    @worker.handler("long")
    async def long(job: spool.ActiveJob) -> str:
        await asyncio.sleep(2)  # the work: over three lease durations
        handler_done.set()
        return "finished"

    job = await client.enqueue("long", {}, max_attempts=3, backoff=FAST)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_SUCCEEDED)

    assert handler_done.is_set()
    assert done.attempt == 1
    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_SUCCEEDED]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_cancel_stops_a_running_handler(client: spool.AsyncClient, kind: str) -> None:
    worker = make_worker(client, lease_duration=timedelta(milliseconds=600))
    started = threading.Event()
    saw_cancel = threading.Event()

    async def async_handler(job: spool.ActiveJob) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    def sync_handler(job: spool.ActiveJob) -> None:
        started.set()
        while not job.cancelled:
            time.sleep(0.01)  # the handler's own polling of job.cancelled
        saw_cancel.set()

    worker.handler("cancellable")(async_handler if kind == "async" else sync_handler)
    job = await client.enqueue("cancellable", {}, max_attempts=3)
    async with serving(worker):
        await wait_until(started.is_set)
        await client.cancel(job.id)
        done = await wait_state(client, job.id, Job.STATE_CANCELLED)
        await wait_until(saw_cancel.is_set)

    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_CANCELLED]


async def all_in_state(client: spool.AsyncClient, ids: list[str], state: int) -> bool:
    return all([(await client.get(i)).state == state for i in ids])


async def _finished_exactly_once(client: spool.AsyncClient, ids: list[str]) -> list[Job]:
    jobs = [await client.get(i) for i in ids]
    for job in jobs:
        assert job.state == Job.STATE_SUCCEEDED, job
        outcomes = [a.outcome for a in job.attempts]
        assert outcomes.count(Attempt.OUTCOME_SUCCEEDED) == 1 and outcomes[-1] == Attempt.OUTCOME_SUCCEEDED
        counted = [o for o in outcomes if o != Attempt.OUTCOME_RELEASED]
        assert job.attempt == len(counted), "every attempt is counted, but not one handed back unfinished"
    return jobs


async def test_stop_drains_running_jobs_and_a_second_worker_finishes_the_rest(client: spool.AsyncClient) -> None:
    runs: Counter[str] = Counter()
    first_done = asyncio.Event()

    async def handle(job: spool.ActiveJob) -> None:
        await asyncio.sleep(0.2)
        runs[job.id] += 1
        first_done.set()

    jobs = await client.enqueue_many("drain", [{"i": i} for i in range(12)], max_attempts=3)
    ids = [j.id for j in jobs]
    first = make_worker(client, concurrency=4, grace=timedelta(seconds=20))
    first.handler("drain")(handle)
    async with serving(first):
        await first_done.wait()
    by_first = sum(runs.values())
    assert 0 < by_first < 12

    second = make_worker(client, concurrency=4)
    second.handler("drain")(handle)
    async with serving(second):
        await wait_until(lambda: all_in_state(client, ids, Job.STATE_SUCCEEDED), within=30)

    assert runs == Counter({i: 1 for i in ids}), "no job lost, none run twice"
    finished = await _finished_exactly_once(client, ids)
    assert all(j.attempt == 1 for j in finished)


async def test_stop_releases_jobs_still_running_after_the_grace_period_without_spending_an_attempt(
    client: spool.AsyncClient,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def stuck(job: spool.ActiveJob) -> None:
        started.set()
        await release.wait()

    # One attempt each: a redeploy must not send them to DEAD.
    jobs = await client.enqueue_many("stuck", [{"i": i} for i in range(3)], max_attempts=1)
    first = make_worker(client, concurrency=3, grace=timedelta(milliseconds=100))
    first.handler("stuck")(stuck)
    async with serving(first):
        await wait_until(lambda: first.running == 3)

    for job in [await client.get(j.id) for j in jobs]:
        assert job.state == Job.STATE_PENDING and job.attempt == 0, job
        assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_RELEASED]

    release.set()
    second = make_worker(client, concurrency=3)
    second.handler("stuck")(stuck)
    async with serving(second):
        for job in jobs:
            await wait_state(client, job.id, Job.STATE_SUCCEEDED)

    for job in await _finished_exactly_once(client, [j.id for j in jobs]):
        assert [(a.number, a.outcome) for a in job.attempts] == [
            (1, Attempt.OUTCOME_RELEASED),
            (1, Attempt.OUTCOME_SUCCEEDED),
        ]
        assert job.attempts[0].error.type == "spool.worker.WorkerShutdown" and job.attempt == 1


async def test_a_server_restart_mid_run_loses_no_job(db_url: str, settings: Settings) -> None:
    server = App(settings, db_url)
    port = await server.start()
    runs: Counter[str] = Counter()
    async with spool.AsyncClient(f"127.0.0.1:{port}") as client:
        jobs = await client.enqueue_many("restart", [{"i": i} for i in range(30)], max_attempts=3)
        ids = [j.id for j in jobs]
        worker = make_worker(client, concurrency=4)

        @worker.handler("restart")
        async def handle(job: spool.ActiveJob) -> None:
            await asyncio.sleep(0.05)
            runs[job.id] += 1

        try:
            async with serving(worker):
                await wait_until(lambda: sum(runs.values()) >= 5)
                await server.stop()
                server = App(replace(settings, port=port), db_url)
                await server.start()
                await wait_until(lambda: all_in_state(client, ids, Job.STATE_SUCCEEDED), within=30)
            await _finished_exactly_once(client, ids)
        finally:
            await server.stop()
    assert set(runs) == set(ids)


async def test_a_lost_lease_stops_the_handler_and_reports_nothing(client: spool.AsyncClient) -> None:
    worker = make_worker(client, lease_duration=timedelta(milliseconds=600))
    saw_cancel = asyncio.Event()

    @worker.handler("timeboxed")
    async def slow_then_quick(job: spool.ActiveJob) -> str:
        if job.attempt == 1:
            try:
                await asyncio.Event().wait()  # hangs past its attempt timeout
            except asyncio.CancelledError:
                saw_cancel.set()
                raise
        return "second try"

    job = await client.enqueue(
        "timeboxed", {}, max_attempts=2, attempt_timeout=timedelta(milliseconds=400), backoff=FAST
    )
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_SUCCEEDED)
        await asyncio.wait_for(saw_cancel.wait(), 10)

    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_TIMED_OUT, Attempt.OUTCOME_SUCCEEDED]
    assert done.result == b'"second try"'


async def test_never_more_handlers_than_the_concurrency(client: spool.AsyncClient) -> None:
    worker = make_worker(client, concurrency=3)
    now_running, most = 0, 0

    async def handle(job: spool.ActiveJob) -> None:
        nonlocal now_running, most
        now_running += 1
        most = max(most, now_running)
        await asyncio.sleep(0.05)
        now_running -= 1

    worker.handler("a")(handle)
    worker.handler("b")(handle)
    jobs = [*await client.enqueue_many("a", [{}] * 6), *await client.enqueue_many("b", [{}] * 6)]
    async with serving(worker):
        await wait_until(lambda: all_in_state(client, [j.id for j in jobs], Job.STATE_SUCCEEDED))
    assert most == 3


def _method(details: Any) -> str:
    """The full method name of an intercepted call, e.g. /spool.v1.QueueService/AckBatch."""
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class SlowAckBatch(grpc.aio.UnaryUnaryClientInterceptor):
    """Delays every AckBatch, as a busy server would: the outcomes of finished handlers pile up."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = _method(details)
        if method.endswith("/AckBatch"):
            await asyncio.sleep(0.05)  # the simulated server time, not a wait for anything
        return await continuation(details, request)


class SlowAckClient(spool.AsyncClient):
    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.connection.address, interceptors=[SlowAckBatch()])
        return self._channel


async def no_op(job: spool.ActiveJob) -> None:
    pass


def sync_no_op(job: spool.ActiveJob) -> None:
    pass


_PROGRESS = """
SELECT count(*) FILTER (WHERE state = 'running') AS running,
       count(*) FILTER (WHERE state IN ('pending', 'running')) AS unfinished
FROM spool.jobs
"""
_ONE_ATTEMPT_EACH = """
SELECT count(*) FROM spool.jobs j
WHERE j.state = 'succeeded' AND j.attempt = 1
  AND (SELECT array_agg(a.outcome::text) FROM spool.attempts a WHERE a.job_id = j.id) = '{succeeded}'
"""


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_slow_acks_hold_the_slots_so_leases_never_exceed_the_concurrency(
    app: App, client: spool.AsyncClient, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    for _ in range(2):  # the server takes 1,000 jobs per batch
        await client.enqueue_many("backlog", [{}] * 1000, lease_duration=timedelta(seconds=5))
    async with SlowAckClient(f"127.0.0.1:{app.port}") as slow:
        worker = make_worker(slow, concurrency=50, lease_duration=timedelta(seconds=5))
        worker.handler("backlog")(no_op if kind == "async" else sync_no_op)
        leased, held = 0, 0

        async def drained() -> bool:
            nonlocal leased, held
            held = max(held, worker.running)
            row = await db.fetchrow(_PROGRESS)
            assert row is not None
            leased = max(leased, row["running"])
            return bool(row["unfinished"] == 0)

        async with serving(worker):
            await wait_until(drained, within=120, interval=0.005)

    assert 0 < leased <= 50, "the server never saw more RUNNING jobs than the worker's slots"
    assert held <= 50
    assert await db.fetchval(_ONE_ATTEMPT_EACH) == 2000, "every job SUCCEEDED in its first and only attempt"
    complaints = [r.getMessage() for r in caplog.records if r.name == "spool.worker" and r.levelno >= logging.WARNING]
    assert complaints == [], "no beat raced an Ack into LEASE_LOST"


class LeaseWatch(grpc.aio.UnaryUnaryClientInterceptor):
    """Sees every Lease call: how many are in flight together, and the slots held and asked for."""

    def __init__(self) -> None:
        self.worker: spool.Worker | None = None
        self.asked: list[int] = []  # max_jobs of each Lease in flight
        self.most_in_flight = 0
        self.most_committed = 0  # slots held by jobs + slots asked for by Leases in flight

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = _method(details)
        if not method.endswith("/Lease"):
            return await continuation(details, request)
        assert self.worker is not None
        self.asked.append(request.max_jobs)
        self.most_in_flight = max(self.most_in_flight, len(self.asked))
        self.most_committed = max(self.most_committed, self.worker.running + sum(self.asked))
        try:
            call = await continuation(details, request)
            await call
            return call
        finally:
            self.asked.remove(request.max_jobs)


class WatchedClient(spool.AsyncClient):
    def __init__(self, address: str, watch: grpc.aio.UnaryUnaryClientInterceptor) -> None:
        super().__init__(address)
        self.watch = watch

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.connection.address, interceptors=[self.watch])
        return self._channel


async def test_two_leases_travel_together_but_slots_held_and_asked_for_never_exceed_the_concurrency(
    app: App, client: spool.AsyncClient, db: asyncpg.Connection
) -> None:
    watch = LeaseWatch()
    async with WatchedClient(f"127.0.0.1:{app.port}", watch) as watched:
        worker = make_worker(watched, concurrency=100)
        watch.worker = worker
        one_at_a_time = asyncio.Lock()  # one connection for every handler
        seen_running: list[int] = []

        @worker.handler("overlap")
        async def count_running(job: spool.ActiveJob) -> None:
            async with one_at_a_time:
                seen_running.append(await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'running'"))

        async with serving(worker):
            # An idle worker (of 100 slots or more) waits in two long polls, each for half of the slots.
            await wait_until(lambda: len(watch.asked) == 2)
            assert watch.asked == [50, 50]
            for _ in range(3):
                await client.enqueue_many("overlap", [{}] * 200)

            async def all_succeeded() -> bool:
                async with one_at_a_time:
                    return bool(await db.fetchval("SELECT count(*) = 600 FROM spool.jobs WHERE state = 'succeeded'"))

            await wait_until(all_succeeded, within=60)

    assert len(seen_running) == 600
    assert max(seen_running) <= 100, "the server never saw more RUNNING jobs than the worker's slots"
    assert watch.most_in_flight == 2 and watch.most_committed <= 100


class CallCount(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts the calls of each method."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = _method(details)
        self.calls[method.rsplit("/", 1)[-1]] += 1
        return await continuation(details, request)


async def test_each_ack_batch_leases_the_next_jobs_so_a_busy_worker_seldom_calls_lease(
    app: App, client: spool.AsyncClient, db: asyncpg.Connection
) -> None:
    jobs = await client.enqueue_many("chain", [{"n": n} for n in range(30)])
    count = CallCount()
    async with WatchedClient(f"127.0.0.1:{app.port}", count) as watched:
        worker = make_worker(watched, concurrency=1)
        seen: list[tuple[str, int]] = []

        @worker.handler("chain")
        async def record(job: spool.ActiveJob) -> None:
            seen.append((job.id, await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'running'")))

        async with serving(worker):
            await wait_until(lambda: all_in_state(client, [j.id for j in jobs], Job.STATE_SUCCEEDED))
            await wait_until(lambda: count.calls["Lease"] == 2)  # the last ack found nothing: back to long polls

    assert [job_id for job_id, _ in seen] == [j.id for j in jobs], "in enqueue order, each once"
    assert {running for _, running in seen} == {1}, "one slot, one lease held at a time"
    assert count.calls["AckBatch"] == 30 and count.calls["Lease"] == 2


class HeldAckBatch(grpc.aio.UnaryUnaryClientInterceptor):
    """Holds each AckBatch before it is sent until `gate` opens."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = _method(details)
        if method.endswith("/AckBatch"):
            self.arrived.set()
            await self.gate.wait()
        return await continuation(details, request)


async def test_jobs_an_ack_batch_hands_over_after_the_grace_are_released_unrun(
    app: App, client: spool.AsyncClient
) -> None:
    first, second = await client.enqueue_many("late", [{"n": 1}, {"n": 2}])
    held = HeldAckBatch()
    ran: list[str] = []
    async with WatchedClient(f"127.0.0.1:{app.port}", held) as watched:
        worker = make_worker(watched, concurrency=1, grace=timedelta(0))
        worker.handler("late")(lambda job: ran.append(job.id))
        serving_task = asyncio.create_task(worker.serve())
        await asyncio.wait_for(held.arrived.wait(), 30)  # the first job's Ack asks for the next job
        worker.stop()
        held.gate.set()  # sent after stop(): the second job is leased once the grace is over
        await asyncio.wait_for(serving_task, 30)

    assert ran == [first.id]
    assert (await client.get(first.id)).state == Job.STATE_SUCCEEDED
    again = await client.get(second.id)
    assert again.state == Job.STATE_PENDING and again.attempt == 0
    assert [a.outcome for a in again.attempts] == [Attempt.OUTCOME_RELEASED]
