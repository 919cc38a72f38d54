"""JobStore: one typed async method per query of sql/jobs.sql."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import asyncpg

from spoold.errors import InvalidArgument, JobNotFound, LeaseLost, SpoolError, WrongState
from spoold.metrics.jobs import JobMetrics
from spoold.model import (
    Ack,
    AttemptPage,
    Heartbeat,
    HeartbeatResult,
    Job,
    JobDefaults,
    JobError,
    JobState,
    LeaseRequest,
    Nack,
    NewJob,
    is_json,
)
from spoold.store import queries, rows
from spoold.store.coalesce import Coalescer, KeyedCoalescer
from spoold.store.database import Connection, translated
from spoold.store.rows import Enqueued, JobRow

Q = queries.load("jobs.sql")
log = logging.getLogger(__name__)

# The most items one coalesced statement carries (a larger single call goes alone).
COALESCE_MAX = 1000
INSERT_ALONE_FROM = 32

# Pipeline steps as insert_jobs takes them: (pipeline id, step names, parent refs, unfinished parents).
StepColumns = tuple[int, list[str | None], list[str | None], list[int]]
_NO_STEPS: StepColumns = (0, [], [], [])
# One job wanted by a Lease call: (worker id, lease, the call, the call's byte budget or None).
Slot = tuple[str | None, timedelta | None, int, int | None]
_NO_TOKEN = 2**63 - 1  # above every lease token: no bound on the attempts read
_LATEST = AttemptPage()
Held = tuple[int, int]  # (job id, lease token): a lease as a fenced call names it
R = TypeVar("R")


def _held(row: asyncpg.Record) -> Held:
    """Matches a finished or extended row to the call that named its lease, not only its job: a
    stale call and the current holder's call for the same job can share one statement."""
    return row["id"], row["lease_token"]


def _columns(jobs: Sequence[NewJob]) -> list[list[object]]:
    """The jobs as the column arrays insert_jobs unnests, in its parameter order."""
    cols: list[list[object]] = [[] for _ in range(23)]
    for j in jobs:
        as_json = is_json(j.content_type)
        rate = j.rate_limit
        values = (
            j.queue,
            j.payload.decode() if as_json else None,
            None if as_json else j.payload,
            j.content_type,
            json.dumps(dict(j.headers)) if j.headers else None,
            j.priority,
            j.run_at,
            j.max_attempts,
            j.backoff.kind.value if j.backoff.kind else None,
            j.backoff.initial,
            j.backoff.max,
            j.backoff.multiplier,
            j.backoff.jitter,
            j.lease_duration,
            j.attempt_timeout,
            j.idempotency_key,
            j.concurrency_key,
            j.concurrency_limit,
            j.concurrency_global,
            j.rate_key,
            rate.limit if rate else None,
            rate.interval if rate else None,
            rate.burst if rate else None,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


def _server_defaults(d: JobDefaults) -> list[object]:
    """The server's defaults: insert_jobs' last parameters, used where neither job nor queue sets one."""
    b = d.backoff
    return [d.max_attempts, b.kind.value, b.initial, b.max, b.multiplier, b.jitter, d.lease_duration]


def _lease_failure(job_id: int, lease_token: int, row: asyncpg.Record | None) -> SpoolError:
    if row is None:
        return JobNotFound(job_id)
    state = JobState(row["state"])
    if row["lease_token"] != lease_token:
        return LeaseLost(f"lease_token: job {job_id} was leased again", field="lease_token")
    if state is JobState.RUNNING:
        expired = row["lease_expires_at"].isoformat()
        return LeaseLost(f"lease_token: the lease on job {job_id} expired at {expired}", field="lease_token")
    return LeaseLost(
        f"lease_token: job {job_id} is no longer held by this lease: it is {state.name}", field="lease_token"
    )


class JobStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        defaults: JobDefaults | None = None,
        max_log_chars: int = 64 * 1024,
        max_releases: int = 100,
    ) -> None:
        self.pool = pool
        self.defaults = defaults or JobDefaults()
        self.max_log_chars = max_log_chars
        # Releases a job gets for free per (re)queue; past them a release counts as an attempt.
        self.max_releases = max_releases
        # Counts what this process does to jobs (metrics/jobs.py); None when metrics are off.
        self.metrics: JobMetrics | None = None
        # Concurrent enqueues (without idempotency keys), claims on the same queues, and acks
        # share one statement each. A check constraint failing is one caller's bad input: the
        # others are then inserted without it. An EnqueueBatch of INSERT_ALONE_FROM jobs or more
        # is inserted at once, beside the rest: inserts are CPU work in the database, which
        # several statements spread over its cores (for claims, one statement avoids SKIP LOCKED
        # contention instead, so they are always gathered).
        self._inserts: Coalescer[NewJob, Enqueued] = Coalescer(
            self._insert_unkeyed, COALESCE_MAX, isolate=(InvalidArgument,), alone_from=INSERT_ALONE_FROM
        )
        self._claims: KeyedCoalescer[frozenset[str], Slot, JobRow | None] = KeyedCoalescer(
            self._claim_slots, COALESCE_MAX, unanswered=self._give_back
        )
        self._giving_back: set[asyncio.Task[None]] = set()
        self._calls = itertools.count()
        # When (event-loop time) a rate limit that held back jobs of these queues lets the next start.
        self._reopens: dict[frozenset[str], float] = {}
        self._acks: Coalescer[Ack, Job | SpoolError] = Coalescer(self._ack_rows, COALESCE_MAX)
        self._acks_only: Coalescer[Ack, SpoolError | None] = Coalescer(self._ack_ids, COALESCE_MAX)

    @property
    def queued(self) -> int:
        """Enqueue, Lease and Ack calls waiting for the statement now running to end."""
        return self._inserts.queued + self._claims.queued + self._acks.queued + self._acks_only.queued

    async def enqueue(self, jobs: Sequence[NewJob]) -> Sequence[Enqueued]:
        """Creates the jobs in one transaction; a taken idempotency key yields the original job.
        The jobs stay rows, for the API to send as they are (rows.JobRow)."""
        if not any(j.idempotency_key for j in jobs):
            return await self._inserts.submit(jobs)
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                return await self._insert(conn, jobs)

    async def _insert_unkeyed(self, jobs: list[NewJob]) -> list[Enqueued]:
        # Without idempotency keys nothing is looked up after the insert, so that one statement is
        # its own transaction: no BEGIN and COMMIT round trips on the hot path.
        with translated():
            async with self.pool.acquire() as conn:
                return await self._insert(conn, jobs)

    async def insert_in(
        self, conn: Connection, jobs: Sequence[NewJob], steps: StepColumns = _NO_STEPS
    ) -> list[Enqueued]:
        """enqueue, on the caller's connection and in its transaction (the jobs of schedule fires,
        the steps of a pipeline)."""
        return await self._insert(conn, jobs, steps)

    async def _insert(self, conn: Connection, jobs: Sequence[NewJob], steps: StepColumns = _NO_STEPS) -> list[Enqueued]:
        found = await conn.fetch(Q["insert_jobs"], *_columns(jobs), *_server_defaults(self.defaults), *steps)
        inserted = {r["ord"]: r for r in found}
        results = []
        for ord_, new in enumerate(jobs, start=1):
            if ord_ in inserted:
                results.append(Enqueued(inserted[ord_], deduplicated=False))
            else:
                results.append(Enqueued(await self._original(conn, new), deduplicated=True))
        if self.metrics is not None:
            self.metrics.enqueued((j.queue for j in jobs), (e.deduplicated for e in results))
        return results

    async def _original(self, conn: Connection, new: NewJob) -> JobRow:
        # A new statement takes a new snapshot, so a key committed by a racing enqueue is seen here.
        row = await conn.fetchrow(Q["get_job_by_idempotency_key"], new.queue, new.idempotency_key)
        if row is None:
            raise WrongState("the job holding this idempotency key was deleted; try again")
        return row

    async def get(
        self, job_id: int, with_attempts: bool = True, with_logs: bool = False, page: AttemptPage = _LATEST
    ) -> Job:
        """The job, with a page of its attempts (the latest by default) and how many it has; the
        attempts are oldest first, and the job's `more_attempts` says whether older ones remain."""
        with translated():
            # One snapshot for all reads: else an ack between them shows its attempt twice.
            async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                row = await conn.fetchrow(Q["get_job"], job_id)
                if row is None:
                    raise JobNotFound(job_id)
                if not with_attempts:
                    return rows.job(row)
                job = rows.job(row)
                running = rows.running_attempt(job) if page.before is None else None
                wanted = page.size - (running is not None)
                found = await conn.fetch(Q["get_attempts"], job_id, page.before or _NO_TOKEN, wanted + 1)
                total = await conn.fetchval(Q["count_attempts"], job_id) + (running is not None)
                shown = found[:wanted]
                tokens = [r["lease_token"] for r in shown] + ([running.lease_token] if running else [])
                logs = await conn.fetch(Q["get_logs"], job_id, tokens) if with_logs else None
        attempts = [*(rows.attempt(r) for r in reversed(shown)), *([running] if running else [])]
        job = replace(job, attempts=tuple(attempts), attempts_total=total, more_attempts=len(found) > wanted)
        return job if logs is None else rows.with_logs(job, logs)

    async def claim(self, req: LeaseRequest) -> list[JobRow]:
        """Leases up to max_jobs ready jobs, in claim order; Lease calls on the same queues that
        arrive while a claim runs are claimed together in the next statement. The jobs stay rows,
        for the API to send as they are (rows.JobRow)."""
        slots = [(req.worker_id, req.lease_duration, next(self._calls), req.max_bytes)] * req.max_jobs
        return [j for j in await self._claims.submit(frozenset(req.queues), slots) if j is not None]

    def _give_back(self, claimed: Sequence[JobRow | None]) -> None:
        """Jobs claimed for a Lease call that was gone (cancelled) when its claim ended: released
        at once, as a Nack with release would, instead of waiting out a lease nobody holds."""
        error = JobError("LeaseCancelled", "the Lease call that claimed this job ended before it got the job")
        self.give_back([r for r in claimed if r is not None], error)

    def give_back(self, claimed: Sequence[JobRow], why: JobError) -> None:
        """Releases claimed jobs that their caller will not get (its call ended, or the answer
        could not be sent), in the background, without spending an attempt."""
        held = [_held(r) for r in claimed]
        if held:
            task = asyncio.create_task(self._release(held, why))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)

    async def _release(self, held: Sequence[Held], error: JobError) -> None:
        for job_id, lease_token in held:
            try:
                await self.nack(Nack(job_id, lease_token, error, release=True))
            except SpoolError as err:  # leased again or gone meanwhile: nothing left to give back
                log.info("job %d: not given back (%s): %s", job_id, error.type, err)
            except Exception:  # the database went away: the reaper ends the lease when it expires
                log.warning("job %d: not given back (%s)", job_id, error.type, exc_info=True)

    def reopens_in(self, queues: frozenset[str]) -> float | None:
        """Seconds until a rate limit that held back jobs of these queues at their last claim lets
        the next one start; None if none did."""
        at = self._reopens.get(queues)
        return None if at is None else max(0.0, at - asyncio.get_running_loop().time())

    async def _claim_slots(self, queues: frozenset[str], slots: list[Slot]) -> list[JobRow | None]:
        """One claim for many callers: the jobs go to the slots in claim order, each call's while
        they fit its budget (a job that does not goes to the next call's slots)."""
        numbers: dict[int, int] = {}
        calls = [numbers.setdefault(call, len(numbers) + 1) for _, _, call, _ in slots]
        budgets: list[int | None] = [None] * len(numbers)
        for _, _, call, budget in slots:
            budgets[numbers[call] - 1] = budget
        with translated():
            found = await self.pool.fetch(
                Q["claim_within"],
                sorted(queues),
                [s[0] for s in slots],
                [s[1] for s in slots],
                calls,
                budgets,
            )
        if found and found[-1]["id"] is None:  # the claim's wake-up row (sql: spool.claim_slots)
            wake = found.pop()
            wait = (wake["run_at"] - wake["started_at"]).total_seconds()
            self._reopens[queues] = asyncio.get_running_loop().time() + wait
        else:
            self._reopens.pop(queues, None)
        if self.metrics is not None:
            self.metrics.leased(found)
        filled: list[JobRow | None] = [None] * len(slots)
        for row in found:
            filled[row["slot_no"] - 1] = row
        return filled

    async def append_logs(self, items: Sequence[Heartbeat | Ack | Nack]) -> None:
        """Appends the log lines the calls carry to their attempts, before the calls end them (a
        stale lease's lines are dropped). Costs nothing when no call carries any."""
        chunks: dict[Held, str] = {}
        for item in items:
            if item.logs:
                held = (item.job_id, item.lease_token)
                chunks[held] = chunks.get(held, "") + item.logs
        if not chunks:
            return
        with translated():
            await self.pool.execute(
                Q["append_logs"],
                [i for i, _ in chunks],
                [t for _, t in chunks],
                list(chunks.values()),
                self.max_log_chars,
            )

    async def heartbeat(self, beats: Sequence[Heartbeat]) -> list[HeartbeatResult | SpoolError]:
        """Extends each held lease; a refused one gets its reason, in request order."""
        await self.append_logs(beats)
        with translated():
            found = await self.pool.fetch(
                Q["heartbeat_many"],
                [b.job_id for b in beats],
                [b.lease_token for b in beats],
                [b.lease_duration for b in beats],
                [b.set_checkpoint for b in beats],
                [b.checkpoint for b in beats],
            )
        extended = {_held(r): HeartbeatResult(r["lease_expires_at"], r["cancel_requested"]) for r in found}
        return await self._or_refused([(b.job_id, b.lease_token) for b in beats], extended)

    async def ack(self, acks: Sequence[Ack]) -> Sequence[Job | SpoolError]:
        """Finishes each held lease successfully; a refused one gets its reason, in request order.
        Acks that arrive while an ack statement runs are finished together in the next one."""
        return await self._acks.submit(acks)

    async def ack_only(self, acks: Sequence[Ack]) -> Sequence[SpoolError | None]:
        """As ack, without reading the finished jobs back: None for each acked job."""
        return await self._acks_only.submit(acks)

    async def _ack_rows(self, acks: list[Ack]) -> list[Job | SpoolError]:
        found = await self._ack(Q["ack_many"], acks)
        return await self._or_refused([(a.job_id, a.lease_token) for a in acks], {_held(r): rows.job(r) for r in found})

    async def _ack_ids(self, acks: list[Ack]) -> list[SpoolError | None]:
        done: dict[Held, None] = {_held(r): None for r in await self._ack(Q["ack_many_ids"], acks)}
        return await self._or_refused([(a.job_id, a.lease_token) for a in acks], done)

    async def _or_refused(self, held: list[Held], done: dict[Held, R]) -> list[R | SpoolError]:
        """Each fenced call's answer, in order: what the statement gave its lease, else why it was refused."""
        failed = await self.lease_failures([h for h in held if h not in done])
        return [done[h] if h in done else failed[h] for h in held]

    async def _ack(self, query: str, acks: Sequence[Ack]) -> list[asyncpg.Record]:
        await self.append_logs(acks)
        with translated():
            found: list[asyncpg.Record] = await self.pool.fetch(
                query,
                [a.job_id for a in acks],
                [a.lease_token for a in acks],
                [a.result for a in acks],
                [a.result_content_type for a in acks],
            )
        if self.metrics is not None:
            self.metrics.succeeded(found)
        return found

    async def nack(self, n: Nack) -> Job:
        await self.append_logs([n])
        with translated():
            row = await self.pool.fetchrow(
                Q["nack"],
                n.job_id,
                n.lease_token,
                n.retryable,
                n.retry_after,
                n.error.type or None,
                n.error.message or None,
                n.error.details or None,
                n.set_checkpoint,
                n.checkpoint,
                n.release,
                self.max_releases,
            )
        if row is None:
            raise await self.lease_failure(n.job_id, n.lease_token)
        if self.metrics is not None:
            self.metrics.nacked(row, n.release)
        return rows.job(row)

    async def lease_failure(self, job_id: int, lease_token: int) -> SpoolError:
        """Why a fenced call matched nothing: the job is unknown, or the lease is no longer held."""
        (failure,) = (await self.lease_failures([(job_id, lease_token)])).values()
        return failure

    async def lease_failures(self, refused: Sequence[Held]) -> dict[Held, SpoolError]:
        """lease_failure for many (job id, lease token) pairs, in one query."""
        if not refused:
            return {}
        with translated():
            found = {r["id"]: r for r in await self.pool.fetch(Q["lease_states"], [i for i, _ in refused])}
        return {(i, token): _lease_failure(i, token, found.get(i)) for i, token in refused}

    async def reap(self, limit: int) -> int:
        """Ends expired leases and timed-out attempts; returns how many."""
        with translated():
            reaped = await self.pool.fetch(Q["reap_expired"], limit)
        if self.metrics is not None:
            self.metrics.reaped(reaped)
        return len(reaped)

    async def cancel(self, job_id: int) -> Job:
        with translated():
            row = await self.pool.fetchrow(Q["cancel_job"], job_id)
        if row is not None:
            if self.metrics is not None:
                self.metrics.cancelled(row)
            return rows.job(row)
        job = await self.get(job_id, with_attempts=False)
        if job.state is JobState.CANCELLED:
            return job
        raise WrongState(
            f"job_id: job {job_id} is {job.state.name} and can no longer be cancelled",
            job_id=str(job_id),
            field="job_id",
        )

    async def requeue(self, job_ids: Sequence[int], include_succeeded: bool) -> list[Job]:
        """Requeues all the jobs or, if any cannot be, none of them."""
        allowed = [JobState.DEAD.value, JobState.CANCELLED.value]
        if include_succeeded:
            allowed.append(JobState.SUCCEEDED.value)
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                found = {r["id"]: rows.job(r) for r in await conn.fetch(Q["requeue_jobs"], list(job_ids), allowed)}
                for job_id in job_ids:
                    if job_id not in found:
                        raise await self._not_requeueable(conn, job_id, include_succeeded)
        return [found[i] for i in job_ids]

    async def _not_requeueable(self, conn: Connection, job_id: int, include_succeeded: bool) -> SpoolError:
        row = await conn.fetchrow(Q["get_job"], job_id)
        if row is None:
            return JobNotFound(job_id, field="job_ids")
        state = JobState(row["state"]).name
        hint = "" if include_succeeded or state != "SUCCEEDED" else " (set include_succeeded to requeue it)"
        if state == "SUCCEEDED" and row["pipeline_id"] is not None:
            hint = " (a pipeline step that succeeded never runs again)"
        return WrongState(
            f"job_ids: job {job_id} is {state}; only finished jobs can be requeued{hint}",
            job_id=str(job_id),
            field="job_ids",
        )
