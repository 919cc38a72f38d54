"""The reaper: ends attempts whose lease expired (dead worker) or whose timeout passed (hung job)."""

from __future__ import annotations

import logging

from spoold.loops.base import Loop
from spoold.store.jobs import JobStore

log = logging.getLogger(__name__)


class Reaper(Loop):
    name = "reaper"

    def __init__(self, store: JobStore, interval: float, batch: int) -> None:
        super().__init__(interval)
        self._store = store
        self._batch = batch

    async def run_once(self) -> int:
        reaped = await self._store.reap(self._batch)
        if reaped:
            log.info("reaped %d expired leases", reaped)
        return reaped
