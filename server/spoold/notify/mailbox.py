"""A bounded, coalescing queue for one subscriber: a reader that falls behind keeps the latest
`bound` items and loses older ones, so memory stays flat whatever the writer does."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self, bound: int) -> None:
        if bound < 1:
            raise ValueError("bound must be at least 1")
        self.bound = bound
        self._items: deque[T] = deque(maxlen=bound)
        self._wakeup = asyncio.Event()
        self._error: BaseException | None = None
        self._drain_first = True
        # Items dropped because the reader was behind: for tests and metrics.
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if self._error is not None:
            return
        if len(self._items) == self.bound:
            self.coalesced += 1
        self._items.append(item)  # deque(maxlen) drops the oldest
        self._wakeup.set()

    def close(self, error: BaseException, *, drain_first: bool) -> None:
        """Ends the mailbox: get() raises `error`, after the queued items if drain_first."""
        if self._error is None:
            self._error = error
            self._drain_first = drain_first
            self._wakeup.set()

    async def get(self) -> T:
        while True:
            if self._error is not None and not (self._drain_first and self._items):
                raise self._error
            if self._items:
                return self._items.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()
