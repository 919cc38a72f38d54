"""Worker: leases jobs in batches with long poll, runs handlers concurrently, heartbeats, reports outcomes.

Lifecycle: serve() leases while there are free slots. A job holds its slot from its lease until its
handler has returned and its outcome is answered by the server, and a Lease in flight holds the slots
it asked for, so a worker never holds more than `concurrency` leases, however slow the server is to
answer (backpressure). From 100 slots up, two Leases may be in flight, each for up to half the slots,
so one batch is leased while the outcomes of the other travel; below that, one at a time. In a
busy queue the Lease calls are seldom needed: each AckBatch asks for as many new jobs as it acks
(AckBatchRequest.next), so the slots its acks free are filled in the same call.
stop() (or SIGTERM/SIGINT under run()) stops leasing, lets running handlers finish within `grace`,
then cancels the rest and releases them: each is handed back with a Nack that does not spend an
attempt, so a redeploy costs the jobs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar, Unpack

from spool import _logs
from spool._cancels import CancelWatcher
from spool._convert import EnqueueOptions, duration
from spool._heartbeats import Heartbeater
from spool._logsetup import default_logging
from spool._outcomes import Reporter
from spool._retry import UNANSWERED, WORKER_RETRY, RetryPolicy
from spool._tracing import process_span
from spool.client import AsyncClient
from spool.errors import SpoolError
from spool.job import ActiveJob, ack_request
from spool.schedules import CatchUp, Declarations, Overlap, ScheduleSpec
from spool.v1 import queue_service_pb2 as qs

log = logging.getLogger("spool.worker")

Handler = Callable[[ActiveJob], Any]
H = TypeVar("H", bound=Handler)

_MAX_LEASE = 1000
# With `concurrency` of at least _LEASES_IN_FLIGHT * _MIN_SPLIT, that many Lease calls may be in flight
# at once, each for its share of the slots: while the outcomes of one batch travel to the server, the
# next batch is already being leased. Splitting means more calls per job, which only pays for large
# batches (measured: a gain at 50 jobs per call and up, a loss at 32 and below); under it, one Lease
# at a time asks for every free slot.
_LEASES_IN_FLIGHT = 2
_MIN_SPLIT = 50
# A Lease in flight when stop() comes may already have claimed jobs: give it this long to hand them over.
_LEASE_CUTOFF = 1.0


class WorkerShutdown(Exception):
    """The worker stopped before the handler finished; the job is released to run again."""


class Cancelled(Exception):
    """Cancellation was requested while the handler ran."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs registered handlers for jobs leased from their queues, `concurrency` at a time."""

    def __init__(
        self,
        client: AsyncClient,
        queues: Sequence[str] = (),
        *,
        concurrency: int = 10,
        lease_duration: timedelta = timedelta(seconds=30),
        poll_wait: timedelta = timedelta(seconds=20),
        grace: timedelta = timedelta(seconds=30),
        worker_id: str | None = None,
        retry: RetryPolicy = WORKER_RETRY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.lease_duration = lease_duration
        self.poll_wait = poll_wait
        self.grace = grace
        self.worker_id = worker_id or default_worker_id()
        # The worker never gives up on the server: an outage pauses it, it does not end it.
        self.retry = retry.forever()
        self._handlers: dict[str, Handler] = {}
        # Queues whose handler is a coroutine function (run on the loop, not in a thread).
        self._async_queues: set[str] = set()
        # Jobs from lease until their handler's outcome is answered (or the handler was interrupted),
        # by lease token: a job leased again while its lost attempt still runs is a second entry.
        self._running: dict[str, tuple[ActiveJob, asyncio.Task[None]]] = {}
        # Handlers stopped by cancellation, a lost lease or shutdown: their own outcome is not reported.
        self._interrupted: set[str] = set()
        # Handlers that returned: their outcome is on its way, so they can no longer be interrupted.
        self._finished: set[str] = set()
        # Outcomes of interrupted jobs (cancelled, released at shutdown) still waiting for an answer.
        self._reporting: dict[str, asyncio.Task[None]] = {}
        # Slots set aside for the jobs the Leases in flight may return.
        self._reserved = 0
        self._lease_calls = _LEASES_IN_FLIGHT if concurrency >= _LEASES_IN_FLIGHT * _MIN_SPLIT else 1
        self._lease_batch = min(-(-concurrency // self._lease_calls), _MAX_LEASE)
        self._hurry = False
        # Shutdown's grace is over: jobs an AckBatch sent before stop() still hands over are released.
        self._grace_over = False
        self._slot_freed = asyncio.Event()
        self._stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._heartbeats = Heartbeater(
            client, lease_duration.total_seconds() / 3, on_lost=self._lost, on_cancel=self._cancel
        )
        self._cancels = CancelWatcher(client, self.worker_id, self._cancel_id, self.retry)
        self._queues: tuple[str, ...] = ()
        self._reporter = Reporter(client, self.retry, self._refill, self._take_over)
        self._schedules = Declarations()

    def handler(self, queue: str) -> Callable[[H], H]:
        """Registers the decorated function for `queue`; async functions run on the loop, others in threads."""

        def register(fn: H) -> H:
            if queue in self._handlers:
                raise ValueError(f"a handler for {queue!r} is already registered")
            self._handlers[queue] = fn
            if inspect.iscoroutinefunction(fn):
                self._async_queues.add(queue)
            return fn

        return register

    def schedule(
        self,
        when: str,
        *,
        queue: str,
        name: str | None = None,
        payload: Any = None,
        time_zone: str = "UTC",
        overlap: Overlap = "allow",
        catch_up: CatchUp = "latest",
        catch_up_limit: int = 0,
        jitter: timedelta | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Callable[[H], H]:
        """Declares a schedule (named `name`, default the queue's name), created or updated on the
        server when the worker starts: at each fire time of `when` ("0 3 * * *", "@hourly",
        "every 30s"), one job in `queue`. As a decorator, the function also handles the queue.
        Many workers may declare the same schedule; a pause set by an operator is kept."""
        spec = ScheduleSpec(
            name or queue, when, queue, payload, time_zone, overlap, catch_up, catch_up_limit, jitter, options
        )
        self._schedules.add(spec)

        def register(fn: H) -> H:
            return fn if self._handlers.get(queue) is fn else self.handler(queue)(fn)

        return register

    @property
    def running(self) -> int:
        """Jobs holding a slot: leased, and not yet both finished and answered by the server."""
        return len(self._running.keys() | self._reporting.keys())

    def stop(self) -> None:
        """Begins a graceful stop; safe to call from any thread or a signal handler."""
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_up)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()
        self._slot_freed.set()  # the lease loop may be waiting for a slot

    def run(self) -> None:
        """Serves until SIGTERM or SIGINT, then drains; blocks. A second signal skips the grace period.
        Without logging configured, prints spool's INFO lines to stderr (docs/python.md, "Logging")."""
        default_logging()
        asyncio.run(self._serve_with_signals())

    async def _serve_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self._stopping.is_set():
            self._hurry = True
        log.info("stopping: no new jobs; waiting up to %s for %d running", self.grace, self.running)
        self.stop()

    async def serve(self) -> None:
        """Runs until stop(), then drains. Raises if a part of the worker fails (e.g. a queue is refused)."""
        queues = self.queues or tuple(self._handlers)
        missing = [q for q in queues if q not in self._handlers]
        if not queues or missing:
            raise ValueError(f"no handler for queues {missing}" if missing else "no handler registered")
        await self._schedules.declare(self.client)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stopping.is_set():
            self._wake.set()
        self._queues = tuple(queues)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="spool-handler")
        _logs.install()
        log.info(
            "worker %s started: queues %s, concurrency %d, server %s",
            self.worker_id,
            ", ".join(queues),
            self.concurrency,
            self.client.connection.address,
        )
        helpers = [asyncio.create_task(self._heartbeats.run()), asyncio.create_task(self._reporter.run())]
        watching = asyncio.create_task(self._cancels.run())  # may end early: heartbeats stand in
        leasing = [asyncio.create_task(self._lease_batches(queues)) for _ in range(self._lease_calls)]
        try:
            await self._until_stopped(leasing, helpers)
            await self._drain()
        finally:
            for task in (*leasing, *helpers, watching):
                task.cancel()
            await asyncio.gather(*leasing, *helpers, watching, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)
            _logs.uninstall()

    async def _until_stopped(self, leasing: list[asyncio.Task[None]], helpers: list[asyncio.Task[None]]) -> None:
        assert self._wake is not None
        woken = asyncio.create_task(self._wake.wait())
        try:
            done, _ = await asyncio.wait([woken, *leasing, *helpers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        for task in done:
            if task is not woken and not (task in leasing and self._stopping.is_set()):
                task.result()  # a part of the worker died: say why, loudly
                raise RuntimeError("a worker task ended on its own")
        await asyncio.wait(leasing, timeout=_LEASE_CUTOFF)
        for task in leasing:
            task.cancel()

    async def _lease_batches(self, queues: Sequence[str]) -> None:
        """Leases one batch at a time while there are free slots: those neither held by a job nor
        reserved by a Lease in flight, so leases held never exceed `concurrency`."""
        delays = self.retry.delays()
        while not self._stopping.is_set():
            free = self.concurrency - self.running - self._reserved
            if free <= 0:
                await self._slot_freed.wait()
                self._slot_freed.clear()
                continue
            asked = min(free, self._lease_batch)
            self._reserved += asked
            try:
                leased = await self.client.lease(
                    queues,
                    max_jobs=asked,
                    wait=self.poll_wait,
                    lease_duration=self.lease_duration,
                    worker_id=self.worker_id,
                )
            except SpoolError as err:
                if err.code not in UNANSWERED:  # e.g. a queue name refused: a mistake to show, not ride out
                    raise
                delay = next(delays)
                log.warning("lease failed, pausing %.1fs: %s", delay, err)
                await asyncio.sleep(delay)
                continue
            finally:
                self._reserved -= asked
                self._slot_freed.set()  # slots it reserved and got no job for are free again
            delays = self.retry.delays()
            self._start_all(leased)

    def _refill(self, acked: int) -> qs.LeaseRequest | None:
        """What an AckBatch asks for after its acks: a job for each slot they free, so the slots pass
        straight to new jobs (slots it gets no job for are freed when the acks are answered)."""
        if self._stopping.is_set():
            return None
        return qs.LeaseRequest(
            queues=self._queues,
            max_jobs=min(acked, _MAX_LEASE),
            lease_duration=duration(self.lease_duration),
            worker_id=self.worker_id,
        )

    def _take_over(self, leased: Sequence[qs.LeasedJob], acked: Sequence[ActiveJob]) -> None:
        """The jobs an AckBatch leased take the slots of the jobs it acked, in one step, so the worker
        never counts both. (A job whose ack was refused keeps its slot until its Nack is answered;
        its lease is already gone, as refusals of single acks in a batch are lost leases or
        missing jobs, so the server never sees more than `concurrency` leases.)"""
        for job in acked:
            self._forget(job)
        self._start_all(leased)

    def _forget(self, job: ActiveJob) -> None:
        if self._running.get(job.lease_token, (None,))[0] is job:
            del self._running[job.lease_token]

    def _start_all(self, leased: Sequence[qs.LeasedJob]) -> None:
        for item in leased:
            self._start(item)

    def _start(self, leased: qs.LeasedJob) -> None:
        job = ActiveJob(leased)
        job._save = functools.partial(self._heartbeats.save, job)
        if self._grace_over:
            self._report(job, self._reporter.nack(job, WorkerShutdown("worker stopped"), release=True))
            return
        self._heartbeats.hold(job)
        task = asyncio.create_task(self._execute(job), name=f"spool-job-{job.id}")
        self._running[job.lease_token] = (job, task)

    async def _execute(self, job: ActiveJob) -> None:
        """Runs the handler and reports its outcome; the job holds its slot until the outcome is answered."""
        try:
            outcome = await self._run_handler(job)
            if isinstance(outcome, qs.AckRequest):
                await self._reporter.ack(job, outcome)
            elif outcome is not None:
                log.warning(
                    "job %s (%s, attempt %d of %d) failed: %s: %s",
                    job.id,
                    job.queue,
                    job.attempt,
                    job.max_attempts,
                    type(outcome).__name__,
                    outcome,
                )
                await self._reporter.nack(job, outcome)
        finally:
            self._forget(job)
            self._interrupted.discard(job.lease_token)
            self._finished.discard(job.lease_token)
            self._slot_freed.set()

    async def _run_handler(self, job: ActiveJob) -> qs.AckRequest | Exception | None:
        """The Ack or the failure to report, or None if the handler was interrupted (nothing to report)."""
        try:
            result = await self._invoke(job)
            outcome: qs.AckRequest | Exception = ack_request(job, result)  # unencodable: fails like a raise
        except asyncio.CancelledError:
            if job.lease_token not in self._interrupted:
                raise
            return None
        except Exception as exc:
            outcome = exc
        finally:
            # No beats once the handler is done. A beat racing the outcome would be refused (LEASE_LOST)
            # as soon as the Ack lands, and the lease does not need one: at most `concurrency` outcomes
            # are ever pending and the Ack sender sends them without pause, so an Ack waits at most for
            # the AckBatch in flight and then its own, well within the two thirds of a lease or more
            # left after the last beat. (An outage outlasting the lease ends the lease either way, as
            # beats fail too; the reaper then retries the job.)
            self._heartbeats.release(job)
        if job.lease_token in self._interrupted:
            return None
        self._finished.add(job.lease_token)
        return outcome

    async def _invoke(self, job: ActiveJob) -> Any:
        with process_span(job):  # a no-op unless OpenTelemetry is on and the job carries a trace
            return await self._call_handler(job)

    async def _call_handler(self, job: ActiveJob) -> Any:
        fn = self._handlers[job.queue]
        # The handler's `logging` records go to its attempt's log (spool._logs.CaptureHandler).
        _logs.CURRENT.set(job)  # in this job's own task: its context is its own
        if job.queue in self._async_queues:
            return await fn(job)
        assert self._pool is not None
        # Shielded: cancelling the task cannot stop a thread, so the slot stays taken until it returns.
        run = contextvars.copy_context().run
        future = asyncio.get_running_loop().run_in_executor(self._pool, run, fn, job)
        result = await asyncio.shield(future)
        return await result if inspect.isawaitable(result) else result

    def _interrupt(self, job: ActiveJob) -> bool:
        """Stops the handler and keeps its outcome from being reported; False if it already finished."""
        token = job.lease_token
        entry = self._running.get(token)
        if entry is None or entry[0] is not job or token in self._interrupted or token in self._finished:
            return False
        self._interrupted.add(job.lease_token)
        self._heartbeats.release(job)
        job.mark_cancelled()
        if job.queue in self._async_queues:
            entry[1].cancel()
        return True

    def _lost(self, job: ActiveJob) -> None:
        self._interrupt(job)

    def _cancel_id(self, job_id: str) -> None:
        for job, _ in [entry for entry in self._running.values() if entry[0].id == job_id]:
            self._cancel(job)

    def _cancel(self, job: ActiveJob) -> None:
        if self._interrupt(job):
            log.info("job %s: cancellation requested, handler cancelled", job.id)
            self._report(job, self._reporter.nack(job, Cancelled("cancellation requested")))

    def _report(self, job: ActiveJob, outcome: Awaitable[None]) -> None:
        """Sends an interrupted job's outcome beside its handler; the job keeps a slot until it is answered."""
        task: asyncio.Task[None] = asyncio.ensure_future(outcome)
        self._reporting[job.lease_token] = task

        def answered(_: asyncio.Task[None]) -> None:
            if self._reporting.get(job.lease_token) is task:
                del self._reporting[job.lease_token]
            self._slot_freed.set()

        task.add_done_callback(answered)

    async def _drain(self) -> None:
        """Waits up to `grace` for running handlers, then releases what is left (no attempt spent)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace.total_seconds()
        while self.running and loop.time() < deadline and not self._hurry:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), deadline - loop.time())
        self._grace_over = True
        left = [job for job, _ in self._running.values() if self._interrupt(job)]
        if left:
            log.warning("grace period over: %d jobs released to run again", len(left))
        for job in left:
            self._report(job, self._reporter.nack(job, WorkerShutdown("worker stopped"), release=True))
        # Outcomes are retried through outages, but not past the leases: after that the reaper has the
        # jobs. An answered AckBatch may still hand over jobs, which _start releases: wait for those too.
        deadline = loop.time() + self.lease_duration.total_seconds()
        while pending := self._unanswered():
            _, late = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
            if late:
                log.error("stopping with outcomes unreported; their jobs will be retried when their leases expire")
                for task in late:
                    task.cancel()
                return

    def _unanswered(self) -> list[asyncio.Task[None]]:
        answering = [task for job, task in self._running.values() if job.lease_token in self._finished]
        return [task for task in (*self._reporting.values(), *answering) if not task.done()]
