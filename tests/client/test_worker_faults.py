"""spool.Worker against a spoold whose calls fail on purpose (tests/grpc_faults.py, a server
interceptor): a handler's success is recorded once, with no extra attempt, whatever the Acks meet."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

import spool
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from tests.client.conftest import serving
from tests.client.test_worker import make_worker, wait_state
from tests.conftest import wait_until
from tests.grpc_faults import FaultInjector

Job = job_pb2.Job
JobEvent = qs.JobEvent
Attempt = job_pb2.Attempt
INTERNAL = grpc.StatusCode.INTERNAL
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

# Quick retries, so a test spends little time in backoff.
QUICK = spool.RetryPolicy(initial=timedelta(milliseconds=20), maximum=timedelta(milliseconds=100))


@pytest.fixture
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture
async def app(db_url: str, settings: Settings, faults: FaultInjector) -> AsyncIterator[App]:
    server = App(settings, db_url, interceptors=(faults,))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def run_once(client: spool.AsyncClient, faults: FaultInjector) -> tuple[Job, list[int]]:
    """Runs one job (max_attempts=1) through a Worker; the job when it ends and the attempts its handler saw."""
    worker = make_worker(client, retry=QUICK)
    seen: list[int] = []

    @worker.handler("faulty")
    async def handle(job: spool.ActiveJob) -> dict[str, int]:
        seen.append(job.attempt)
        return {"ok": 1}

    job = await client.enqueue("faulty", {"n": 1}, max_attempts=1)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_SUCCEEDED)
    return done, seen


def assert_succeeded_once(done: Job, seen: list[int], faults: FaultInjector) -> None:
    assert seen == [1], "the handler ran once"
    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_SUCCEEDED]
    assert done.result == b'{"ok":1}'
    assert "Nack" not in faults.calls, "a success is never turned into a failure"
    assert not any(faults.plan.values()), "every planned fault was met"


@pytest.mark.parametrize("code", [INTERNAL, UNAVAILABLE])
async def test_an_ack_batch_whose_answer_is_lost_is_repeated_and_counts_as_done(
    client: spool.AsyncClient, faults: FaultInjector, code: grpc.StatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    # The first AckBatch lands, then its answer is replaced by an error: the repeat is refused
    # LEASE_LOST, and the job is SUCCEEDED by this very attempt.
    faults.add("AckBatch", code, after=True)
    with caplog.at_level(logging.INFO, logger="spool.worker"):
        done, seen = await run_once(client, faults)
    assert_succeeded_once(done, seen, faults)
    assert faults.calls.count("AckBatch") == 2
    assert "ack already recorded" in caplog.text
    assert "lease lost" not in caplog.text


@pytest.mark.parametrize("code", [INTERNAL, UNAVAILABLE])
async def test_an_ack_batch_that_fails_before_landing_is_repeated_until_answered(
    client: spool.AsyncClient, faults: FaultInjector, code: grpc.StatusCode
) -> None:
    for _ in range(3):
        faults.add("AckBatch", code)
    done, seen = await run_once(client, faults)
    assert_succeeded_once(done, seen, faults)
    assert faults.calls.count("AckBatch") == 4


async def test_single_acks_after_a_refused_batch_are_repeated_too(
    client: spool.AsyncClient, faults: FaultInjector
) -> None:
    # A batch refused as a whole falls back to one Ack per job; those meet a lost answer, then an outage.
    faults.add("AckBatch", grpc.StatusCode.INVALID_ARGUMENT)
    faults.add("Ack", INTERNAL, after=True)
    faults.add("Ack", UNAVAILABLE)
    done, seen = await run_once(client, faults)
    assert_succeeded_once(done, seen, faults)
    assert faults.calls.count("Ack") == 3


async def test_a_refused_result_still_fails_the_attempt(client: spool.AsyncClient, faults: FaultInjector) -> None:
    worker = make_worker(client, retry=QUICK)

    @worker.handler("faulty")
    async def handle(job: spool.ActiveJob) -> bytes:
        return b"x" * (2 * 1024 * 1024)  # over the server's payload limit

    job = await client.enqueue("faulty", {}, max_attempts=1)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_DEAD)
    assert done.last_error.type == "spool._outcomes.ResultRefused"
    assert "result" in done.last_error.message


async def test_a_lease_that_fails_with_internal_pauses_the_worker_not_ends_it(
    client: spool.AsyncClient, faults: FaultInjector, caplog: pytest.LogCaptureFixture
) -> None:
    faults.add("Lease", INTERNAL)
    faults.add("Lease", grpc.StatusCode.UNKNOWN)
    with caplog.at_level(logging.WARNING, logger="spool.worker"):
        done, seen = await run_once(client, faults)
    assert seen == [1]
    assert done.state == Job.STATE_SUCCEEDED
    assert [f.code for f in faults.injected] == [INTERNAL, grpc.StatusCode.UNKNOWN]
    failed = [r for r in caplog.records if r.message.startswith("lease failed")]
    assert len(failed) == 2 and all(r.levelno == logging.WARNING for r in failed)


async def test_nan_is_refused_locally_in_payloads_and_results(client: spool.AsyncClient) -> None:
    with pytest.raises(ValueError, match="NaN and infinities"):
        await client.enqueue("faulty", {"x": float("nan")})
    assert [j async for j in client.list(spool.Filter(queues=["faulty"]))] == []

    worker = make_worker(client, retry=QUICK)

    @worker.handler("faulty")
    async def handle(job: spool.ActiveJob) -> dict[str, float]:
        return {"score": float("inf")}

    job = await client.enqueue("faulty", {}, max_attempts=1)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_DEAD)
    assert done.last_error.type == "ValueError"
    assert "NaN and infinities" in done.last_error.message
    assert done.result == b""


@pytest.mark.parametrize("hours", [1, -1])
async def test_a_worker_whose_clock_is_an_hour_off_heartbeats_in_time(
    client: spool.AsyncClient, faults: FaultInjector, hours: int
) -> None:
    # The server's timestamps are an hour off the worker's clock. The worker times its beats from the
    # lease it asked for (1.5 s: a beat every 0.5 s), never from lease_expires_at.
    faults.skew = timedelta(hours=hours)
    worker = make_worker(client, retry=QUICK, lease_duration=timedelta(milliseconds=1500))
    seen: list[int] = []

    @worker.handler("skewed")
    async def handle(job: spool.ActiveJob) -> None:
        seen.append(job.attempt)
        await asyncio.sleep(3.5)  # the work, longer than the lease

    job = await client.enqueue("skewed", {}, max_attempts=1)
    async with serving(worker):
        done = await wait_state(client, job.id, Job.STATE_SUCCEEDED)
    assert seen == [1]
    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_SUCCEEDED]
    beats = faults.calls.count("HeartbeatBatch")
    assert 3 <= beats <= 12, f"{beats} heartbeats in 3.5 s"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_cancel_reaches_the_handler_at_once_not_at_the_next_heartbeat(
    app: App, client: spool.AsyncClient, faults: FaultInjector, kind: str
) -> None:
    # A 60 s lease: the first heartbeat would come after 20 s. WatchCancels brings the cancel now.
    worker = make_worker(client, retry=QUICK, lease_duration=timedelta(seconds=60))
    started = threading.Event()
    stopped = threading.Event()

    async def async_handler(job: spool.ActiveJob) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    def sync_handler(job: spool.ActiveJob) -> None:
        started.set()
        while not job.cancelled:
            time.sleep(0.01)
        stopped.set()

    worker.handler("slow")(async_handler if kind == "async" else sync_handler)
    job = await client.enqueue("slow", {}, max_attempts=3)
    assert app.cancels is not None
    hub = app.cancels
    async with serving(worker):
        await wait_until(lambda: started.is_set() and hub.streams(worker.worker_id) == 1)
        await client.cancel(job.id)
        await wait_until(stopped.is_set, within=5)
        done = await wait_state(client, job.id, Job.STATE_CANCELLED, within=5)
    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_CANCELLED]
    assert faults.calls.count("HeartbeatBatch") == 0, "no heartbeat was needed"


async def test_without_watch_cancels_a_cancel_still_comes_with_the_heartbeat(
    app: App, client: spool.AsyncClient, faults: FaultInjector, caplog: pytest.LogCaptureFixture
) -> None:
    # As against a server from before WatchCancels: the stream is UNIMPLEMENTED, heartbeats deliver.
    faults.add("WatchCancels", grpc.StatusCode.UNIMPLEMENTED)
    worker = make_worker(client, retry=QUICK, lease_duration=timedelta(milliseconds=1500))
    started = asyncio.Event()
    stopped = asyncio.Event()

    @worker.handler("slow")
    async def handle(job: spool.ActiveJob) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    job = await client.enqueue("slow", {}, max_attempts=3)
    with caplog.at_level(logging.INFO, logger="spool.worker"):
        async with serving(worker):
            await asyncio.wait_for(started.wait(), 10)
            await client.cancel(job.id)
            await asyncio.wait_for(stopped.wait(), 10)
            done = await wait_state(client, job.id, Job.STATE_CANCELLED, within=5)
    assert [a.outcome for a in done.attempts] == [Attempt.OUTCOME_CANCELLED]
    assert faults.calls.count("WatchCancels") == 1, "an UNIMPLEMENTED stream is not asked again"
    assert faults.calls.count("HeartbeatBatch") >= 1
    assert "cancellations come with heartbeats only" in caplog.text


@pytest.mark.parametrize("code", [INTERNAL, grpc.StatusCode.ABORTED])
@pytest.mark.parametrize("one_by_one", [False, True])
async def test_a_checkpoint_whose_heartbeat_met_a_fault_is_sent_again_not_dropped(
    client: spool.AsyncClient, faults: FaultInjector, code: grpc.StatusCode, one_by_one: bool
) -> None:
    # A server fault or an aborted call is no refusal of the checkpoint: it goes with the next beat,
    # whether the batch met it or (after a batch refused as a whole) the single beat did.
    if one_by_one:
        faults.add("HeartbeatBatch", grpc.StatusCode.RESOURCE_EXHAUSTED)
        faults.add("Heartbeat", code)
    else:
        faults.add("HeartbeatBatch", code)
    worker = make_worker(client, retry=QUICK, lease_duration=timedelta(milliseconds=1500))
    stored = asyncio.Event()

    @worker.handler("progress")
    async def handle(job: spool.ActiveJob) -> None:
        job.checkpoint({"done": 7})
        await stored.wait()

    job = await client.enqueue("progress", {}, max_attempts=1)
    async with serving(worker):

        async def checkpointed() -> bool:
            return (await client.get(job.id)).checkpoint == b'{"done":7}'

        await wait_until(checkpointed, within=15)
        stored.set()
        await wait_state(client, job.id, Job.STATE_SUCCEEDED)
    assert not any(faults.plan.values()), "every planned fault was met"


async def test_a_watch_reopens_after_unavailable_and_repeats_no_snapshot(
    client: spool.AsyncClient, faults: FaultInjector
) -> None:
    faults.add("WatchJob", UNAVAILABLE)
    job = await client.enqueue("watched", {})
    states = []
    async for seen in client.watch(job.id):
        states.append(seen.state)
        if seen.state == Job.STATE_PENDING:
            await client.cancel(job.id)
    assert states == [Job.STATE_PENDING, Job.STATE_CANCELLED]
    assert faults.calls.count("WatchJob") == 2


async def test_a_sync_tail_reopens_after_unavailable(
    app: App, client: spool.AsyncClient, sync_client: spool.Client, faults: FaultInjector
) -> None:
    faults.add("TailJobs", UNAVAILABLE)
    events = sync_client.tail(["tailed"])
    first = asyncio.ensure_future(asyncio.to_thread(next, events))
    assert app.tail is not None
    tail = app.tail
    await wait_until(lambda: faults.calls.count("TailJobs") == 2 and tail.streams == 1)
    job = await client.enqueue("tailed", {})
    event = await asyncio.wait_for(first, 10)
    assert (event.event.job_id, event.event.kind) == (job.id, JobEvent.KIND_ENQUEUED)
    events.close()
