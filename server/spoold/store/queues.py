"""QueueStore: queue settings (pause, defaults) and stats, one typed method per query of sql/queues.sql."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from spoold.errors import QueueNotEmpty, QueueNotFound
from spoold.model import BackoffKind, BackoffSpec, Queue, QueueActivity, QueueDefaults, QueueStats, QueueUpdate
from spoold.store import queries, rows
from spoold.store.database import translated
from spoold.store.searching import SearchPool

Q = queries.load("queues.sql")

# Finished jobs deleted per statement by a forced DeleteQueue: short transactions, however big the queue.
DELETE_BATCH = 5000

# QueueUpdate field names -> spool.queues columns, in update_defaults' parameter order ($3...).
COLUMNS = {
    "max_attempts": "max_attempts",
    "backoff.kind": "backoff_kind",
    "backoff.initial": "backoff_initial",
    "backoff.max": "backoff_max",
    "backoff.multiplier": "backoff_multiplier",
    "backoff.jitter": "backoff_jitter",
    "lease_duration": "lease_duration",
    "attempt_timeout": "attempt_timeout",
    "retention_succeeded": "retention_succeeded",
    "retention_cancelled": "retention_cancelled",
    "retention_dead": "retention_dead",
}


def _defaults(row: asyncpg.Record) -> QueueDefaults:
    kind = row["backoff_kind"]
    return QueueDefaults(
        max_attempts=row["max_attempts"],
        backoff=BackoffSpec(
            kind=BackoffKind(kind) if kind is not None else None,
            initial=row["backoff_initial"],
            max=row["backoff_max"],
            multiplier=row["backoff_multiplier"],
            jitter=row["backoff_jitter"],
        ),
        lease_duration=row["lease_duration"],
        attempt_timeout=row["attempt_timeout"],
        retention_succeeded=row["retention_succeeded"],
        retention_cancelled=row["retention_cancelled"],
        retention_dead=row["retention_dead"],
    )


def _queue(row: asyncpg.Record) -> Queue:
    counts = ("scheduled", "retrying", "running", "dead", "succeeded", "cancelled", "finished_last_minute")
    due = row["ready"] or 0
    # A queue whose own window is shut holds back all its due jobs; else only those of shut keys.
    throttled = due if row["queue_throttled"] else row["key_throttled"] or 0
    stats = QueueStats(**{c: row[c] or 0 for c in counts}, ready=due - throttled, throttled=throttled, lag=row["lag"])
    return Queue(
        name=row["name"], paused=row["paused"], defaults=_defaults(row), stats=stats, rate_limit=rows.rate_limit(row)
    )


def _unfinished(s: QueueStats) -> str:
    """ "2 ready and 1 running job(s)": the statuses that keep a queue from being deleted."""
    counts = {
        "ready": s.ready,
        "throttled": s.throttled,
        "scheduled": s.scheduled,
        "retrying": s.retrying,
        "running": s.running,
    }
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    return (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]) + " job(s)"


def _value(d: QueueDefaults, name: str) -> object:
    if name.startswith("backoff."):
        value = getattr(d.backoff, name.removeprefix("backoff."))
        return value.value if isinstance(value, BackoffKind) else value
    return getattr(d, name)


class QueueStore:
    def __init__(self, pool: asyncpg.Pool, searches: SearchPool) -> None:
        self.pool = pool
        # Stats count a queue's jobs, which can take long: they are searches (store/searching.py).
        self.searches = searches

    async def list(self, after: str = "", limit: int = 1000) -> tuple[Sequence[Queue], bool]:
        """The first `limit` queues by name after `after`, and whether more follow."""
        async with self.searches.connection() as conn:
            found = [_queue(r) for r in await conn.fetch(Q["list_queues"], after, limit + 1)]
        return found[:limit], len(found) > limit

    async def existing(self, names: Sequence[str]) -> set[str]:
        """Which of the names are queues (have settings or jobs)."""
        with translated():
            return {r["name"] for r in await self.pool.fetch(Q["existing_queues"], names)}

    async def count(self) -> int:
        """How many queues there are (a pass over every job, at most every few seconds: see
        QueueLimit). On the main pool: an Enqueue must not wait behind searches."""
        with translated():
            return int(await self.pool.fetchval(Q["count_queues"]))

    async def activity(self, minutes: int) -> tuple[datetime | None, dict[str, QueueActivity]]:
        """Jobs finished per minute over the last `minutes`, per queue with any, and the start
        of the first minute (None when no queue has one)."""
        async with self.searches.connection() as conn:
            found = await conn.fetch(Q["queue_activity"], minutes)
        out: dict[str, QueueActivity] = {}
        for r in found:
            a = out.setdefault(r["queue"], QueueActivity(r["queue"], [0] * minutes, [0] * minutes))
            if 0 <= r["minute"] < minutes:
                (a.succeeded if r["state"] == "succeeded" else a.dead)[r["minute"]] = r["n"]
        return (found[0]["start"] if found else None), out

    async def get(self, name: str) -> Queue:
        async with self.searches.connection() as conn:
            row = await conn.fetchrow(Q["get_queue"], name)
        if row is None:
            raise QueueNotFound(name)
        return _queue(row)

    async def gauges(self) -> Sequence[asyncpg.Record]:
        """Every queue with a job: its counts by derived status, the oldest ready job's age, paused."""
        with translated():
            rows: Sequence[asyncpg.Record] = await self.pool.fetch(Q["queue_gauges"])
        return rows

    async def roll_up_counts(self) -> int:
        """Folds the count deltas the triggers wrote into the counts; how many it folded."""
        with translated():
            return int(await self.pool.fetchval(Q["roll_up_counts"]))

    async def set_paused(self, name: str, paused: bool) -> Queue:
        with translated():
            await self.pool.execute(Q["set_paused"], name, paused)
        return await self.get(name)

    async def update(self, u: QueueUpdate) -> Queue:
        """Writes the named defaults (the others are kept), and the rate limit if named, in one transaction."""
        columns = [COLUMNS[f] for f in sorted(u.fields) if f in COLUMNS]
        # Unnamed fields are passed as NULL, so a new row gets the server's defaults for them.
        values = [_value(u.defaults, f) if f in u.fields else None for f in COLUMNS]
        r = u.rate_limit
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                if columns:
                    await conn.execute(Q["update_defaults"], u.name, columns, *values)
                if "rate_limit" in u.fields:
                    limit = (r.limit, r.interval, r.burst) if r is not None else (None, None, None)
                    await conn.execute(Q["set_rate_limit"], u.name, *limit)
        return await self.get(u.name)

    async def delete(self, name: str, force: bool) -> int:
        """Deletes the queue's settings and, with force, its finished jobs first; returns how many jobs
        went. Refused while the queue has jobs (with force: PENDING or RUNNING ones), which would be lost."""
        stats = (await self.get(name)).stats
        unfinished = stats.ready + stats.throttled + stats.scheduled + stats.retrying + stats.running
        finished = stats.succeeded + stats.dead + stats.cancelled
        if unfinished:
            raise QueueNotEmpty(name, f"has {_unfinished(stats)}: cancel them, or let them finish, first", unfinished)
        if finished and not force:
            raise QueueNotEmpty(name, f"has {finished} finished job(s): force deletes them with the queue", finished)
        deleted = 0
        while force:
            with translated():
                gone = await self.pool.fetch(Q["delete_finished_jobs"], name, DELETE_BATCH)
            deleted += len(gone)
            if len(gone) < DELETE_BATCH:
                break
        with translated():
            row = await self.pool.fetchrow(Q["delete_queue"], name)
        assert row is not None  # an aggregate always answers one row
        if row["jobs"]:
            # Enqueued or requeued while the finished ones were deleted: nothing of the new work is lost.
            raise QueueNotEmpty(name, f"has {row['jobs']} job(s) that arrived meanwhile", row["jobs"])
        return deleted
