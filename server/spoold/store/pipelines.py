"""PipelineStore: one typed async method per query of sql/pipelines.sql."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from spoold.errors import JobNotFound, PipelineNotFound, WrongState
from spoold.model import JobState, is_json
from spoold.pipelines import NewPipeline, NewStep, Pipeline, PipelinePage, PipelineState, Step, StepRetry
from spoold.store import queries, rows
from spoold.store.database import Connection, translated
from spoold.store.jobs import JobStore, StepColumns
from spoold.store.rows import JobRow
from spoold.store.searching import SearchPool

Q = queries.load("pipelines.sql")

ParentRows = dict[int, list[asyncpg.Record]]


def _step_columns(pipeline_id: int, p: NewPipeline) -> StepColumns:
    """The steps as insert_jobs takes them: parents by their ord in the insert (1-based)."""
    steps: list[NewStep] = list(p.steps)
    ords = {s.name: i for i, s in enumerate(steps, start=1)}
    refs: list[str | None] = ["{" + ",".join(str(ords[d]) for d in s.depends_on) + "}" for s in steps]
    waits = [len(s.depends_on) for s in steps]
    if p.on_failure is not None:
        # Waits for one thing, the pipeline's failure; the failed step becomes its parent then.
        steps.append(p.on_failure)
        refs.append(None)
        waits.append(1)
    return pipeline_id, [s.name for s in steps], refs, waits


class PipelineStore:
    def __init__(self, jobs: JobStore, searches: SearchPool | None = None) -> None:
        self.jobs = jobs
        self.pool = jobs.pool
        # ListPipelines computes each pipeline's state from its steps: a search, with its timeout.
        self.searches = searches

    async def enqueue(self, p: NewPipeline) -> tuple[Pipeline, bool]:
        """Creates the pipeline and its steps in one transaction; (pipeline, deduplicated)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                pipeline_id = await conn.fetchval(Q["insert_pipeline"], p.name, p.idempotency_key)
                if pipeline_id is None:
                    # A new statement sees a key committed by a racing EnqueuePipeline.
                    pipeline_id = await conn.fetchval(Q["pipeline_by_idempotency_key"], p.name, p.idempotency_key)
                    if pipeline_id is None:
                        raise WrongState("the pipeline holding this idempotency key was deleted; try again")
                    return await self._read(conn, pipeline_id), True
                news = [s.job for s in p.steps] + ([p.on_failure.job] if p.on_failure else [])
                made = await self.jobs.insert_in(conn, news, _step_columns(pipeline_id, p))
                if p.on_failure is not None:
                    await conn.execute(Q["set_on_failure"], pipeline_id, made[-1].row["id"])
                return await self._read(conn, pipeline_id, with_attempts=False), False

    async def get(self, pipeline_id: int, with_attempts: bool = True) -> Pipeline:
        with translated():
            async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                return await self._read(conn, pipeline_id, with_attempts)

    async def list(self, page: PipelinePage, queue_like: list[str] | None) -> tuple[list[Pipeline], bool]:
        """A page of pipelines (without their steps), newest first, and whether more follow; with
        queue_like, only those whose every step's queue matches one of these LIKE patterns."""
        f = page.filter
        states = [s.value for s in f.states] or None
        args = (page.after_id, page.size + 1, states, f.name_prefix, f.paused, queue_like)
        if self.searches is None:
            with translated():
                found = await self.pool.fetch(Q["list_pipelines"], *args)
        else:
            async with self.searches.connection() as conn:
                found = await conn.fetch(Q["list_pipelines"], *args)
        out = [
            Pipeline(
                id=r["id"],
                name=r["name"],
                state=PipelineState(r["state"]),
                idempotency_key=r["idempotency_key"],
                paused=r["paused"],
                created_at=r["created_at"],
                steps=(),
                step_count=r["steps"],
                succeeded_steps=r["succeeded"],
            )
            for r in found[: page.size]
        ]
        return out, len(found) > page.size

    async def cancel(self, pipeline_id: int) -> Pipeline:
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(Q["cancel_pipeline"], pipeline_id)
                return await self._read(conn, pipeline_id)

    async def pause(self, pipeline_id: int, paused: bool) -> Pipeline:
        """Pauses (ready steps parked WAITING) or resumes (steps with every parent done made ready)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                if await conn.fetchval(Q["set_paused"], pipeline_id, paused) is None:
                    raise PipelineNotFound(pipeline_id)
                await conn.execute(Q["lock_unfinished_steps"], pipeline_id)
                await conn.execute(Q["park_ready_steps" if paused else "unpark_steps"], pipeline_id)
                return await self._read(conn, pipeline_id)

    async def retry(self, r: StepRetry) -> Pipeline:
        """Fix and resume (RetryStep): the step, and with downstream its descendants, run again."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                step = await conn.fetchrow(Q["step_of"], r.job_id)
                if step is None:
                    raise JobNotFound(r.job_id, field="job_id")
                if step["pipeline_id"] is None or step["on_failure"]:
                    raise WrongState(f"job_id: job {r.job_id} is not a step that can be retried", field="job_id")
                pipeline_id = step["pipeline_id"]
                found = await conn.fetch(Q["retry_targets"], r.job_id, pipeline_id, r.downstream)
                _check_retryable(r, found)
                as_json = r.content_type is not None and is_json(r.content_type)
                payload = r.payload if r.content_type is not None else None
                await conn.execute(
                    Q["retry_steps"],
                    r.job_id,
                    pipeline_id,
                    r.downstream,
                    payload.decode() if as_json and payload is not None else None,
                    None if as_json else payload,
                    r.content_type,
                )
                return await self._read(conn, pipeline_id)

    async def _read(self, conn: Connection, pipeline_id: int, with_attempts: bool = True) -> Pipeline:
        head = await conn.fetchrow(Q["get_pipeline"], pipeline_id)
        if head is None:
            raise PipelineNotFound(pipeline_id)
        found = await conn.fetch(Q["pipeline_steps"], pipeline_id)
        attempts: dict[int, list[asyncpg.Record]] = defaultdict(list)
        if with_attempts:
            for a in await conn.fetch(Q["steps_attempts"], [r["id"] for r in found]):
                attempts[a["job_id"]].append(a)
        names = {r["id"]: r["step_name"] for r in found}
        steps = []
        for r in found:
            job = rows.job(r, attempts.get(r["id"], ()))
            running = rows.running_attempt(job) if with_attempts else None
            if running is not None:
                job = replace(job, attempts=(*job.attempts, running))
            on_failure = r["id"] == head["on_failure_id"]
            # The on_failure step's parent is the failed step, not a dependency it was declared with.
            parents = () if on_failure else tuple(names[i] for i in r["parent_ids"] or ())
            steps.append(Step(r["step_name"], parents, job, on_failure))
        return Pipeline(
            id=pipeline_id,
            name=head["name"],
            state=PipelineState(head["state"]),
            idempotency_key=head["idempotency_key"],
            paused=head["paused"],
            created_at=head["created_at"],
            steps=tuple(steps),
            step_count=sum(1 for s in steps if not s.on_failure),
            succeeded_steps=sum(1 for s in steps if not s.on_failure and s.job.state is JobState.SUCCEEDED),
        )


def _check_retryable(r: StepRetry, found: Sequence[asyncpg.Record]) -> None:
    allowed = ("dead", "cancelled", "succeeded") if r.downstream else ("dead", "cancelled")
    for row in found:
        state = row["state"]
        if row["id"] == r.job_id and state not in allowed:
            mode = "with its downstream" if r.downstream else "alone"
            raise WrongState(f"job_id: step {r.job_id} is {state.upper()}: it cannot be retried {mode}", field="job_id")
        if row["id"] != r.job_id and state == "running":
            raise WrongState(f"job_id: step {row['id']} downstream is RUNNING; retry once it ends", field="job_id")


async def parents_of(pool: asyncpg.Pool, claimed: Sequence[JobRow]) -> ParentRows:
    """The parents of the claimed steps (by child job id), for LeasedJob.parents; nothing for plain jobs."""
    ids = [r["id"] for r in claimed if r["parent_ids"]]
    if not ids:
        return {}
    out: ParentRows = defaultdict(list)
    with translated():
        for r in await pool.fetch(Q["step_parents"], ids):
            out[r["child_id"]].append(r)
    return out
