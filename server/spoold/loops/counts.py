"""The counts loop: folds the per-statement count deltas that spool.jobs' triggers write into
spool.queue_counts (migration 0018), so that the rows readers sum stay few, and keeps jobs scheduled
more than two minutes ahead in one row per queue (migration 0029). Readers are exact whether it has
run or not; one replica at a time does the work (the others skip the round)."""

from __future__ import annotations

from spoold.loops.base import Loop
from spoold.store.queues import QueueStore


class Counts(Loop):
    name = "counts"

    def __init__(self, store: QueueStore, interval: float) -> None:
        super().__init__(interval)
        self._store = store

    async def run_once(self) -> int:
        await self._store.roll_up_counts()
        return 0  # a round folds every delta there is: no reason to go again at once
