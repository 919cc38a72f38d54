"""SearchStore: the job history, searched (ListJobs) and requeued by filter."""

from __future__ import annotations

import asyncpg

from spoold.model import Job, JobFilter, JobPage, JobState, Order
from spoold.store import filters, queries, rows
from spoold.store.database import translated

Q = queries.load("search.sql")

_LIST = {Order.NEWEST_FIRST: Q["list_newest"], Order.OLDEST_FIRST: Q["list_oldest"]}
_REQUEUEABLE = (JobState.DEAD, JobState.CANCELLED)


def requeueable(f: JobFilter, include_succeeded: bool) -> list[JobState]:
    """The states a requeue by this filter may touch: finished ones, narrowed by the filter's own."""
    allowed = [*_REQUEUEABLE, JobState.SUCCEEDED] if include_succeeded else list(_REQUEUEABLE)
    return [s for s in allowed if not f.states or s in f.states]


class SearchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search(self, page: JobPage, queue_like: list[str] | None = None) -> tuple[list[Job], bool]:
        """One page of matching jobs, without their attempts, and whether more follow; with
        queue_like, only jobs whose queue matches one of these LIKE patterns."""
        cond = filters.condition(page.filter, first=2)
        if queue_like is not None:
            cond.add("j.queue LIKE ANY({0}::text[])", queue_like)
        filters.keyset(cond, page.order, page.after_id)
        with translated():
            found = await self.pool.fetch(cond.apply(_LIST[page.order]), page.size + 1, *cond.params)
        jobs = [rows.job(r) for r in found[: page.size]]
        return jobs, len(found) > page.size

    async def requeue(self, f: JobFilter, include_succeeded: bool, limit: int) -> list[Job]:
        """Requeues up to `limit` matching finished jobs; none left means an empty list."""
        states = requeueable(f, include_succeeded)
        if not states:
            return []
        cond = filters.condition(f, first=3)
        with translated():
            found = await self.pool.fetch(
                cond.apply(Q["requeue_matching"]), [s.value for s in states], limit, *cond.params
            )
        return [rows.job(r) for r in found]
