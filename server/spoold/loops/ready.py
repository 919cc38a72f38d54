"""The shared poll behind idle Lease long polls: once per interval, one cheap probe (no claim, no
lock: sql/ready.sql) over the queues that some waiter of this process waits on, and a wake-up for
the waiters of those that have a job ready or due. NOTIFY still wakes waiters at once; this catches
what no NOTIFY announces (a run_at passing, a concurrency key freeing) and a lost notification."""

from __future__ import annotations

from spoold.leasing import Leaser
from spoold.loops.base import Loop
from spoold.store.ready import ReadyStore

# Queues per probe statement: a process whose waiters wait on more runs several.
PROBE_CHUNK = 1000


class ReadyPoller(Loop):
    name = "lease_poll"

    def __init__(self, store: ReadyStore, leaser: Leaser, interval: float) -> None:
        super().__init__(interval)
        self._store = store
        self._leaser = leaser
        self.woken = 0  # waiters woken, in all

    async def run_once(self) -> int:
        queues = self._leaser.waited_queues()
        for start in range(0, len(queues), PROBE_CHUNK):
            ready = await self._store.ready(queues[start : start + PROBE_CHUNK])
            self.woken += self._leaser.wake(ready)
        return 0  # a round covers every waiter: the next is due after the interval
