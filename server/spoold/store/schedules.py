"""ScheduleStore: schedules and their fires, one typed method per query of sql/schedules.sql.

A fire happens under the schedule's row lock (Firing): the scheduler of one replica, or a
TriggerSchedule, holds it while it enqueues the job and records the fire, in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import asyncpg

from spoold.errors import ScheduleExists, ScheduleNotFound
from spoold.model import JobState, NewJob
from spoold.schedules import CatchUp, Change, Fire, FireOutcome, Overlap, Schedule, Settings, Timing
from spoold.store import queries
from spoold.store.database import Connection, translated
from spoold.store.jobs import JobStore
from spoold.store.rows import JobRow

Q = queries.load("schedules.sql")

# Fires kept per schedule: enough to read its recent history; older ones go as new ones come.
FIRE_HISTORY = 100


def _settings(row: asyncpg.Record) -> Settings:
    return Settings(
        timing=Timing(cron=row["cron"], every=row["every"], time_zone=row["time_zone"]),
        template=row["template"],
        queue=row["queue"],
        overlap=Overlap(row["overlap"]),
        catch_up=CatchUp(row["catch_up"]),
        catch_up_limit=row["catch_up_limit"],
        jitter=row["jitter"],
    )


def _fire(row: asyncpg.Record) -> Fire | None:
    if row["fire_time"] is None:
        return None
    state = row["job_state"]
    return Fire(
        fire_time=row["fire_time"],
        fired_at=row["fired_at"],
        outcome=FireOutcome(row["outcome"]),
        job_id=row["job_id"],
        job_state=JobState(state) if state is not None else None,
        error=row["error"],
        triggered=row["triggered"],
    )


def schedule(row: asyncpg.Record, with_fire: bool = True) -> Schedule:
    return Schedule(
        name=row["name"],
        settings=_settings(row),
        paused=row["paused"],
        next_fire_at=row["next_fire_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_fire=_fire(row) if with_fire else None,
    )


def _values(s: Settings) -> list[object]:
    """Settings as the columns of insert_schedule and update_schedule ($2 to $10)."""
    t = s.timing
    return [
        t.cron,
        t.every,
        t.time_zone,
        s.template,
        s.queue,
        s.overlap.value,
        s.catch_up.value,
        s.catch_up_limit,
        s.jitter,
    ]


class _AlreadyFired(Exception):
    """Rolls back the job of a fire time that was fired already."""


class Firing:
    """A schedule locked for firing, until its transaction ends."""

    def __init__(self, conn: Connection, jobs: JobStore, schedule: Schedule) -> None:
        self._conn = conn
        self._jobs = jobs
        self.schedule = schedule

    @property
    def name(self) -> str:
        return self.schedule.name

    async def previous_job_active(self) -> bool:
        """Whether the job of the latest fire that enqueued one is still PENDING or RUNNING."""
        return bool(await self._conn.fetchval(Q["previous_job_active"], self.name))

    async def enqueue(self, fire_time: datetime, job: NewJob, fired_at: datetime, triggered: bool) -> JobRow | None:
        """Enqueues the fire's job and records the fire, both or neither; None if this fire time
        was fired already (its fire row exists), and then no job is enqueued."""
        try:
            with translated():
                async with self._conn.transaction():  # a savepoint: the job goes if the fire row cannot be made
                    (enqueued,) = await self._jobs.insert_in(self._conn, [job])
                    row = enqueued.row
                    args = (FireOutcome.ENQUEUED.value, row["id"], None, triggered)
                    if await self._conn.fetchval(Q["insert_fire"], self.name, fire_time, fired_at, *args) is None:
                        raise _AlreadyFired
        except _AlreadyFired:
            return None
        return row

    async def record(self, fire_time: datetime, fired_at: datetime, outcome: FireOutcome, error: str) -> None:
        """Records a fire that enqueued nothing."""
        await self._conn.execute(Q["insert_fire"], self.name, fire_time, fired_at, outcome.value, None, error, False)

    async def advance(self, next_fire_at: datetime) -> None:
        await self._conn.execute(Q["advance_schedule"], self.name, next_fire_at)
        await self._conn.execute(Q["prune_fires"], self.name, FIRE_HISTORY)


class ScheduleStore:
    def __init__(self, pool: asyncpg.Pool, jobs: JobStore) -> None:
        self.pool = pool
        self._jobs = jobs

    async def create(self, name: str, settings: Settings, next_fire_at: datetime) -> Schedule:
        with translated():
            found = await self.pool.fetchval(Q["insert_schedule"], name, *_values(settings), next_fire_at)
        if found is None:
            raise ScheduleExists(name)
        return await self.get(name)

    async def change(self, c: Change, now: datetime) -> Schedule:
        """Writes the change's fields; with allow_missing, creates the schedule if there is none.
        The next fire time moves only when the timing changes, so that redeclaring a schedule
        unchanged (every Worker does at start-up) leaves it as it was."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["lock_schedule"], c.name)
                if row is None and c.allow_missing:
                    timing = c.settings.timing
                    args = (c.name, *_values(c.settings), timing.first_after(now))
                    if await conn.fetchval(Q["insert_schedule"], *args) is not None:
                        return await self._get(conn, c.name)
                    row = await conn.fetchrow(Q["lock_schedule"], c.name)  # made meanwhile: change it
                if row is None:
                    raise ScheduleNotFound(c.name, field="schedule.name")
                current = _settings(row)
                new = c.applied_to(current)
                moved = new.timing != current.timing
                next_fire_at = new.timing.first_after(now) if moved else row["next_fire_at"]
                await conn.execute(Q["update_schedule"], c.name, *_values(new), next_fire_at)
                return await self._get(conn, c.name)

    async def get(self, name: str) -> Schedule:
        with translated():
            async with self.pool.acquire() as conn:
                return await self._get(conn, name)

    async def _get(self, conn: Connection, name: str) -> Schedule:
        row = await conn.fetchrow(Q["get_schedule"], name)
        if row is None:
            raise ScheduleNotFound(name)
        return schedule(row)

    async def page(self, after: str, size: int, queue_like: list[str] | None = None) -> Sequence[Schedule]:
        """Schedules by name after `after`; with `queue_like`, only those whose queue matches one."""
        with translated():
            return [schedule(r) for r in await self.pool.fetch(Q["list_schedules"], after, size, queue_like)]

    async def delete(self, name: str) -> None:
        with translated():
            if await self.pool.fetchval(Q["delete_schedule"], name) is None:
                raise ScheduleNotFound(name)

    async def set_paused(self, name: str, paused: bool, now: datetime) -> Schedule:
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["lock_schedule"], name)
                if row is None:
                    raise ScheduleNotFound(name)
                resume_at = _settings(row).timing.first_after(now)
                await conn.execute(Q["set_schedule_paused"], name, paused, resume_at)
                return await self._get(conn, name)

    @contextlib.asynccontextmanager
    async def locked(self, name: str) -> AsyncIterator[Firing]:
        """The schedule, locked for firing (waiting for another holder to finish)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["lock_schedule"], name)
                if row is None:
                    raise ScheduleNotFound(name)
                yield Firing(conn, self._jobs, schedule(row, with_fire=False))

    @contextlib.asynccontextmanager
    async def next_due(self, now: datetime) -> AsyncIterator[Firing | None]:
        """One schedule due at `now`, locked for firing; None when none is (or all are taken)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["next_due"], now)
                yield None if row is None else Firing(conn, self._jobs, schedule(row, with_fire=False))
