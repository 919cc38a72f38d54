"""A periodic background task. Tests call run_once(); the app starts it and watches it die."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from spoold.errors import Unavailable

log = logging.getLogger(__name__)


class Loop:
    name = "loop"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Does one round of work; returns how many items it handled."""
        raise NotImplementedError

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=self.name)
        return self._task

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Unavailable as exc:
                # A database outage is not the loop's fault: keep going and try again next round.
                log.warning("%s: %s", self.name, exc)
                handled = 0
            if handled:
                continue  # a full round: more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
