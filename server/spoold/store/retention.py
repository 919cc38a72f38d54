"""RetentionStore: deletes finished jobs, with their attempts, once their queue's retention has passed,
the buckets of rate-limit keys that no job needs any more, and finished pipelines whole, with their
steps (docs/pipelines.md)."""

from __future__ import annotations

import asyncpg

from spoold.model import Retention
from spoold.store import queries
from spoold.store.database import translated

Q = queries.load("search.sql")


class RetentionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def prune(self, defaults: Retention, batch: int) -> int:
        """Deletes up to `batch` expired finished jobs; returns how many."""
        with translated():
            deleted = await self.pool.fetch(
                Q["prune_finished"], defaults.succeeded, defaults.cancelled, defaults.dead, batch
            )
            steps = await self.pool.fetch(
                Q["prune_pipelines"], defaults.succeeded, defaults.cancelled, defaults.dead, batch
            )
        return len(deleted) + len(steps)

    async def prune_rate_keys(self, batch: int) -> int:
        """Deletes up to `batch` idle, full rate-limit key buckets; returns how many."""
        with translated():
            deleted = await self.pool.fetch(Q["prune_rate_keys"], batch)
        return len(deleted)
