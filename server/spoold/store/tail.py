"""TailStore: the job events written while some server tails (spool.job_events, filled by the
jobs triggers of migration 0019)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from spoold.model import JobError, JobState
from spoold.store import queries, rows
from spoold.store.database import translated

Q = queries.load("tail.sql")


@dataclass(frozen=True, slots=True)
class JobEvent:
    seq: int
    at: datetime
    job_id: int
    queue: str
    kind: str
    state: JobState
    attempt: int
    max_attempts: int
    worker_id: str | None
    error: JobError | None


def _event(r: asyncpg.Record) -> JobEvent:
    return JobEvent(
        seq=r["seq"],
        at=r["at"],
        job_id=r["job_id"],
        queue=r["queue"],
        kind=r["kind"],
        state=JobState(r["state"]),
        attempt=r["attempt"],
        max_attempts=r["max_attempts"],
        worker_id=r["worker_id"],
        error=rows.error(r),
    )


class TailStore:
    def __init__(self, pool: asyncpg.Pool, server_id: uuid.UUID, ttl: timedelta) -> None:
        self.pool = pool
        self.server_id = server_id
        self.ttl = ttl

    async def register(self) -> None:
        with translated():
            await self.pool.execute(Q["register_tailer"], self.server_id, self.ttl)

    async def unregister(self) -> None:
        with translated():
            await self.pool.execute(Q["unregister_tailer"], self.server_id)

    async def end(self) -> int:
        """The seq of the last event written so far: a new reader reads after it."""
        with translated():
            return int(await self.pool.fetchval(Q["tail_end"]))

    async def read(self, after: int, missing: Collection[int], limit: int) -> list[JobEvent]:
        """Events after seq `after`, and those numbered `missing`, in seq order."""
        with translated():
            found = await self.pool.fetch(Q["read_events"], after, list(missing), limit)
        return [_event(r) for r in found]

    async def prune(self, keep: timedelta) -> None:
        with translated():
            await self.pool.execute(Q["prune_events"], keep)
