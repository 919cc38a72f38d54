"""An Ack that creates jobs (or steps of its pipeline) in its own transaction: they exist if and
only if the ack is accepted, so a stale ack's follow-ups are refused with it (docs/pipelines.md)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from spoold.errors import InvalidArgument, StepExists
from spoold.model import Ack, FollowUp, Job, JobState
from spoold.store import queries, rows
from spoold.store.database import Connection, translated
from spoold.store.jobs import JobStore, StepColumns
from spoold.store.rows import JobRow

JOBS = queries.load("jobs.sql")
PIPES = queries.load("pipelines.sql")


async def ack_with_follow_ups(store: JobStore, ack: Ack) -> tuple[Job, list[JobRow]]:
    """Finishes the held lease and creates its follow-ups, all or nothing; LeaseLost (nothing
    created) when the lease is no longer held."""
    await store.append_logs([ack])
    try:
        with translated():
            async with store.pool.acquire() as conn, conn.transaction():
                if any(f.step_name is not None for f in ack.follow_ups):
                    await conn.execute(PIPES["lock_pipeline_of_job"], ack.job_id)
                done = await conn.fetch(
                    JOBS["ack_many"], [ack.job_id], [ack.lease_token], [ack.result], [ack.result_content_type]
                )
                if done:
                    steps = await _steps(conn, done[0], ack.follow_ups)
                    created = await store.insert_in(conn, [f.job for f in ack.follow_ups], steps)
                    return rows.job(done[0]), [e.row for e in created]
    except StepExists as exc:
        if exc.step_name is not None:
            raise
        # The unique index refused a name the check above let through: name the step all the same.
        raise await _taken(store, ack) from exc
    raise await store.lease_failure(ack.job_id, ack.lease_token)


async def _taken(store: JobStore, ack: Ack) -> StepExists:
    """The first follow-up step whose name the acked job's pipeline has now."""
    names = [f.step_name for f in ack.follow_ups]
    with translated():
        taken = {r["step_name"] for r in await store.pool.fetch(PIPES["taken_step_names"], ack.job_id, names)}
    for i, name in enumerate(names):
        if name in taken:
            return StepExists(name, f"follow_ups[{i}].step_name")
    return StepExists(None, "follow_ups")


async def _steps(conn: Connection, acked: asyncpg.Record, follow_ups: Sequence[FollowUp]) -> StepColumns:
    """insert_jobs' step columns: each new step's parents (earlier follow-ups by ord, steps of the
    pipeline by id) and how many of them have not succeeded."""
    named = [(i, f) for i, f in enumerate(follow_ups) if f.step_name is not None]
    if not named:
        return 0, [], [], []
    pipeline_id = acked["pipeline_id"]
    if pipeline_id is None:
        raise InvalidArgument(
            f"follow_ups[{named[0][0]}].step_name", f"job {acked['id']} is not a pipeline step: it can add only jobs"
        )
    wanted = {d for _, f in named for d in f.depends_on} | {f.step_name for _, f in named if f.step_name}
    existing = {r["step_name"]: r for r in await conn.fetch(PIPES["named_steps"], pipeline_id, list(wanted))}
    new: dict[str, int] = {}
    names: list[str | None] = [None] * len(follow_ups)
    refs: list[str | None] = [None] * len(follow_ups)
    waits = [0] * len(follow_ups)
    for i, f in named:
        assert f.step_name is not None
        if f.step_name in existing or f.step_name in new:
            raise StepExists(f.step_name, f"follow_ups[{i}].step_name")
        parents = []
        for d in f.depends_on:
            if d in new:
                parents.append(new[d])
                waits[i] += 1
            elif d in existing:
                parents.append(-existing[d]["id"])
                waits[i] += existing[d]["state"] != JobState.SUCCEEDED.value
            else:
                raise InvalidArgument(
                    f"follow_ups[{i}].depends_on", f"step {f.step_name!r} depends on unknown step {d!r}"
                )
        new[f.step_name] = i + 1
        names[i] = f.step_name
        refs[i] = "{" + ",".join(str(p) for p in parents) + "}"
    return pipeline_id, names, refs, waits
