"""The cap on the number of queues (SPOOL_MAX_QUEUES).

Queues are not created: a queue exists while it has jobs or settings. So each Enqueue of a queue
this process has not seen looks it up (through the jobs' indexes), and only a queue that is new
is counted against the cap. Counting every queue is a pass over the jobs, so the count is read
at most every RECOUNT_EVERY seconds and the queues this process adds meanwhile are added to it:
replicas that add queues at the same moment can pass the cap by a few, never by many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from spoold.errors import LimitReached
from spoold.store.queues import QueueStore

RECOUNT_EVERY = 5.0
REASON = "QUEUE_LIMIT_REACHED"


class QueueLimit:
    def __init__(self, store: QueueStore, cap: int) -> None:
        self._store = store
        self._cap = cap
        self._known: set[str] = set()
        self._count = 0
        self._counted_at: float | None = None
        self._counting = asyncio.Lock()

    async def admit(self, names: Iterable[str], field: str = "queue") -> None:
        """Passes if every named queue exists or the new ones fit under the cap; else
        RESOURCE_EXHAUSTED (QUEUE_LIMIT_REACHED), and nothing is enqueued."""
        if not self._cap:
            return
        unknown = {n for n in names if n not in self._known}
        if not unknown:
            return
        existing = await self._store.existing(sorted(unknown))
        # Only queues known to exist are remembered, so memory is bounded by the queues there are.
        self._known |= existing
        new = unknown - existing
        if not new:
            return
        count = await self._current_count()
        if count + len(new) > self._cap:
            raise LimitReached(
                REASON,
                f"{field}: {sorted(new)[0][:200]!r} would be queue {count + len(new)}; this server allows "
                f"{self._cap} (SPOOL_MAX_QUEUES). Delete unused queues or reuse one",
                field=field,
                limit=str(self._cap),
            )
        self._count += len(new)

    async def _current_count(self) -> int:
        async with self._counting:
            now = asyncio.get_running_loop().time()
            if self._counted_at is None or now - self._counted_at >= RECOUNT_EVERY:
                self._count = await self._store.count()
                self._counted_at = now
            return self._count
