"""The scheduler: fires the schedules that are due, in every replica at once. Each due schedule is
taken under its row lock with SKIP LOCKED, so replicas share the work without a leader, and each
fire time is recorded with its job in one transaction, so none is fired twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from spoold.loops.base import Loop
from spoold.scheduling import Firer
from spoold.store.schedules import ScheduleStore

log = logging.getLogger(__name__)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Scheduler(Loop):
    name = "scheduler"

    def __init__(
        self,
        store: ScheduleStore,
        firer: Firer,
        interval: float,
        batch: int = 100,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        super().__init__(interval)
        self._store = store
        self._firer = firer
        self._batch = batch
        self._clock = clock

    async def run_once(self) -> int:
        """Fires up to `batch` due schedules, each in its own transaction; returns how many."""
        now = self._clock()
        handled = enqueued = 0
        for handled in range(self._batch):  # noqa: B007 (the count is the answer)
            async with self._store.next_due(now) as firing:
                if firing is None:
                    break
                enqueued += await self._firer.fire_due(firing, now)
        else:
            handled = self._batch
        if enqueued:
            log.debug("scheduler: %d job(s) enqueued", enqueued)
        return handled
