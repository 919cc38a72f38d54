"""last_used_at, kept cheaply: each server writes a key's use at most once a minute, and all the
keys used since its last round in one statement."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from spoold.errors import Unavailable
from spoold.loops.base import Loop
from spoold.store.keys import KeyStore


class KeyUsage(Loop):
    name = "key-usage"

    def __init__(
        self, store: KeyStore, interval: float, every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(interval)
        self._store = store
        self._every = every
        self._clock = clock
        self._noted: dict[str, float] = {}  # key id -> when its use was last queued for writing
        self._pending: dict[str, datetime] = {}

    def touch(self, key_id: str) -> None:
        """Notes a use of the key; a no-op if one was noted less than a minute ago."""
        now = self._clock()
        if now - self._noted.get(key_id, -self._every) < self._every:
            return
        self._noted[key_id] = now
        self._pending[key_id] = datetime.now(UTC)

    async def run_once(self) -> int:
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        try:
            await self._store.touch(pending)
        except Unavailable:
            self._pending = {**pending, **self._pending}  # written next round
            raise
        return 0  # nothing is left waiting: the loop sleeps until the next round
