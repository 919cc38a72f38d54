"""The pruner: deletes finished jobs past their queue's retention, and idle rate-limit key buckets, in
batches, in any number of processes."""

from __future__ import annotations

import logging

from spoold.loops.base import Loop
from spoold.model import Retention
from spoold.store.retention import RetentionStore

log = logging.getLogger(__name__)


class Pruner(Loop):
    name = "pruner"

    def __init__(self, store: RetentionStore, interval: float, batch: int, defaults: Retention) -> None:
        super().__init__(interval)
        self._store = store
        self._batch = batch
        self._defaults = defaults

    async def run_once(self) -> int:
        pruned = await self._store.prune(self._defaults, self._batch)
        if pruned:
            log.info("pruned %d finished jobs past retention", pruned)
        pruned += await self._store.prune_rate_keys(self._batch)
        # Loop.run goes again at once after a non-empty round, so a backlog drains batch by batch.
        return pruned
