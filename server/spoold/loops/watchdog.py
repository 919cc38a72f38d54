"""The watchdog: health follows the background loops. A loop that is broken (its last run failed
with a bug) or stalled (a run it owes has not completed within the stall timeout: its runs keep
failing, or one hangs) turns the process NOT_SERVING, so that an orchestrator can restart it;
once every loop completes its runs again, the process is SERVING again. The process never stops
itself over a fault."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from spoold.loops.base import Loop, LoopStats

log = logging.getLogger(__name__)


class Watchdog(Loop):
    name = "watchdog"

    def __init__(
        self,
        loops: Sequence[Loop],
        stall_timeout: float,
        set_serving: Callable[[bool], Awaitable[None]],
        interval: float = 1.0,
    ) -> None:
        super().__init__(min(interval, stall_timeout / 4))
        self._loops = loops
        self._stall_timeout = stall_timeout
        self._set_serving = set_serving
        self.serving = True

    def unwell(self, now: float | None = None) -> list[LoopStats]:
        """The loops that hold health down now."""
        found = [loop.stats(now) for loop in self._loops]
        return [s for s in found if s.broken or s.stalled_for >= self._stall_timeout]

    async def run_once(self) -> int:
        unwell = self.unwell(time.monotonic())
        serving = not unwell
        if serving != self.serving:
            if serving:
                log.warning("health SERVING: every background loop completes its runs again")
            else:
                why = "; ".join(_why(s) for s in unwell)
                log.error("health NOT_SERVING: %s", why)
            await self._set_serving(serving)
            self.serving = serving
        return 0


def _why(s: LoopStats) -> str:
    state = "broken by a bug" if s.broken else f"no completed run for {s.stalled_for:.0f}s"
    return f"{s.name} {state} ({s.failing} failed runs in a row, last: {s.last_error})"
