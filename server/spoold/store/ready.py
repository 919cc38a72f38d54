"""ReadyStore: the cheap question the shared long-poll probe asks (sql/ready.sql)."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from spoold.store import queries
from spoold.store.database import translated

Q = queries.load("ready.sql")

# Priority levels the probe walks per queue before it counts the queue as ready (sql/ready.sql).
PROBE_DEPTH = 16


class ReadyStore:
    def __init__(self, pool: asyncpg.Pool, depth: int = PROBE_DEPTH) -> None:
        self.pool = pool
        self.depth = depth
        self.probes = 0  # statements run, for tests and metrics

    async def ready(self, queues: Collection[str]) -> set[str]:
        """Those of the queues that have a job a claim might take now (never a false "no")."""
        self.probes += 1
        with translated():
            found = await self.pool.fetch(Q["ready_queues"], list(queues), self.depth)
        return {r["name"] for r in found}
