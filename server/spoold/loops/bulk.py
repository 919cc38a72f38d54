"""The bulk runner: works through running bulk operations batch by batch, in any number of
processes (each batch holds its operation's row, so two servers never run the same batch)."""

from __future__ import annotations

from spoold.loops.base import Loop
from spoold.store.bulk import BulkStore


class BulkRunner(Loop):
    name = "bulk"

    def __init__(self, store: BulkStore, interval: float, batch: int) -> None:
        super().__init__(interval)
        self._store = store
        self._batch = batch

    async def run_once(self) -> int:
        # Loop.run goes again at once after a non-empty round: an operation runs batch after batch.
        return await self._store.run_batch(self._batch)
