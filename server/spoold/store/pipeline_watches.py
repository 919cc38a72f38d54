"""What WatchPipeline's hub reads besides the pipeline: its steps' job ids (registered as watched
jobs, under a server id of the hub's own) and cheap versions for the poll."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from spoold.store import queries
from spoold.store.database import translated

Q = queries.load("pipeline_watch.sql")


class PipelineWatchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def step_ids(self, pipeline_ids: Collection[int]) -> dict[int, int]:
        """Each step's job id, with its pipeline's id."""
        with translated():
            found = await self.pool.fetch(Q["pipelines_step_ids"], list(pipeline_ids))
        return {r["id"]: r["pipeline_id"] for r in found}

    async def versions(self, pipeline_ids: Collection[int]) -> dict[int, str]:
        with translated():
            found = await self.pool.fetch(Q["pipeline_versions"], list(pipeline_ids))
        return {r["id"]: r["version"] for r in found}
