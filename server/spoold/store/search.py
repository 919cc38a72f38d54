"""SearchStore: the job history, searched (ListJobs) and requeued by filter."""

from __future__ import annotations

import asyncpg

from spoold.model import Job, JobFilter, JobPage, JobState, Order
from spoold.store import filters, queries, rows
from spoold.store.searching import SearchPool

Q = queries.load("search.sql")

_LIST = {Order.NEWEST_FIRST: Q["list_newest"], Order.OLDEST_FIRST: Q["list_oldest"]}
_REQUEUEABLE = (JobState.DEAD, JobState.CANCELLED)
# Every search is planned for its own values. A prepared statement's generic plan knows neither the
# queue nor how rare the state is, and can walk the whole table where a partial index or a queue's
# few rows would answer at once (the listing of one queue's RUNNING jobs did: 350 ms at 1,000,000
# jobs, against 6): two more round trips against a scan (docs/storage.md, "Listing by state").
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


def requeueable(f: JobFilter, include_succeeded: bool) -> list[JobState]:
    """The states a requeue by this filter may touch: finished ones, narrowed by the filter's own."""
    allowed = [*_REQUEUEABLE, JobState.SUCCEEDED] if include_succeeded else list(_REQUEUEABLE)
    return [s for s in allowed if not f.states or s in f.states]


class SearchStore:
    def __init__(self, searches: SearchPool) -> None:
        self.searches = searches

    async def search(self, page: JobPage, queue_like: list[str] | None = None) -> tuple[list[Job], bool]:
        """One page of matching jobs, without their attempts, and whether more follow; with
        queue_like, only jobs whose queue matches one of these LIKE patterns."""
        cond = filters.condition(page.filter, first=2)
        if queue_like is not None:
            cond.add("j.queue LIKE ANY({0}::text[])", queue_like)
        filters.keyset(cond, page.order, page.after_id)
        found = await self._fetch(cond.apply(_LIST[page.order]), page.size + 1, *cond.params, readonly=True)
        jobs = [rows.job(r) for r in found[: page.size]]
        return jobs, len(found) > page.size

    async def requeue(self, f: JobFilter, include_succeeded: bool, limit: int) -> list[Job]:
        """Requeues up to `limit` matching finished jobs; none left means an empty list."""
        states = requeueable(f, include_succeeded)
        if not states:
            return []
        cond = filters.condition(f, first=3)
        query = cond.apply(Q["requeue_matching"])
        found = await self._fetch(query, [s.value for s in states], limit, *cond.params, readonly=False)
        return [rows.job(r) for r in found]

    async def _fetch(self, query: str, *args: object, readonly: bool) -> list[asyncpg.Record]:
        async with self.searches.connection() as conn, conn.transaction(readonly=readonly):
            await conn.execute(_CUSTOM_PLANS)
            return await conn.fetch(query, *args)
