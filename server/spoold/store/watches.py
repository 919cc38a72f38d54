"""WatchStore: which jobs this server watches (spool.watched, read by the NOTIFY trigger), and
cheap row versions for the poll that backs up NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import timedelta

import asyncpg

from spoold.store import queries
from spoold.store.database import translated

Q = queries.load("watch.sql")


class WatchStore:
    def __init__(self, pool: asyncpg.Pool, server_id: uuid.UUID, ttl: timedelta) -> None:
        self.pool = pool
        self.server_id = server_id
        self.ttl = ttl

    async def register(self, job_ids: Collection[int]) -> None:
        """Adds the jobs, or extends their rows' expiry (the keep-alive calls this for all)."""
        with translated():
            await self.pool.execute(Q["register_watches"], list(job_ids), self.server_id, self.ttl)

    async def unregister(self, job_ids: Collection[int]) -> None:
        with translated():
            await self.pool.execute(Q["unregister_watches"], list(job_ids), self.server_id)

    async def unregister_all(self) -> None:
        with translated():
            await self.pool.execute(Q["unregister_server"], self.server_id)

    async def purge_expired(self) -> None:
        with translated():
            await self.pool.execute(Q["purge_expired_watches"])

    async def versions(self, job_ids: Collection[int]) -> dict[int, str]:
        """Row version of each job id that exists."""
        with translated():
            found = await self.pool.fetch(Q["job_versions"], list(job_ids))
        return {r["id"]: r["version"] for r in found}
