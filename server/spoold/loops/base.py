"""A periodic background task that outlives its failures. Tests call run_once(); the app starts it.

A run that raises is logged with its traceback, counted, and tried again after a capped, jittered
backoff: nothing a run raises ends the loop. A fault of the database's (Unavailable) is expected
to pass; anything else is a bug, logged at ERROR on every failure, and marks the loop broken until
a run completes. The watchdog (loops/watchdog.py) turns health NOT_SERVING while a loop is broken,
or stalled: a run it owes has not completed for too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

from spoold.store.database import transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopStats:
    """A loop's counters, for health and metrics."""

    name: str
    runs: int  # completed runs
    failures: int  # failed runs, in all
    failing: int  # failed runs since the last completed one
    broken: bool  # the last failure was a bug, not a database fault
    stalled_for: float  # seconds since the run it owes began (0 when it owes none)
    last_error: str | None
    run_seconds: float = 0.0  # time spent in runs, completed or failed, in all
    last_success: float | None = None  # wall-clock time (epoch seconds) the last completed run ended


class Loop:
    name = "loop"

    def __init__(self, interval: float, backoff_max: float = 5.0) -> None:
        self.interval = interval
        self.backoff_max = backoff_max
        self.runs = 0
        self.failures = 0
        self.failing = 0
        self.broken = False
        self.last_error: str | None = None
        self.run_seconds = 0.0
        self.last_success: float | None = None
        self._owed_since: float | None = None  # monotonic start of the oldest uncompleted run
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

    def stats(self, now: float | None = None) -> LoopStats:
        owed = self._owed_since
        stalled = 0.0 if owed is None else max(0.0, (time.monotonic() if now is None else now) - owed)
        return LoopStats(
            self.name,
            self.runs,
            self.failures,
            self.failing,
            self.broken,
            stalled,
            self.last_error,
            self.run_seconds,
            self.last_success,
        )

    def retry_delay(self) -> float:
        """After the n-th failure in a row: the interval doubled n-1 times, capped at backoff_max
        (or the interval, if longer), drawn from the upper half so that replicas spread out."""
        cap = max(self.interval, self.backoff_max)
        delay = min(cap, self.interval * 2 ** min(max(self.failing - 1, 0), 32))
        return random.uniform(delay / 2, delay)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if await self._round():
                continue  # a full round: more may be waiting
            delay = self.retry_delay() if self.failing else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _round(self) -> int:
        """One run, its failure caught and counted; how many items it handled."""
        if self._owed_since is None:
            self._owed_since = time.monotonic()
        began = time.perf_counter()
        try:
            handled = await self.run_once()
        except Exception as exc:
            self._failed(exc)
            return 0
        finally:
            self.run_seconds += time.perf_counter() - began
        self.last_success = time.time()
        if self.failing:
            log.info("%s: running again after %d failed runs", self.name, self.failing)
        self.runs += 1
        self.failing = 0
        self.broken = False
        self._owed_since = None
        return handled

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.failing += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not transient(exc):
            # A bug: loud on every run, and health NOT_SERVING until a run completes.
            self.broken = True
            log.error("%s: run failed (%d in a row)", self.name, self.failing, exc_info=exc)
        elif self.failing == 1:
            log.warning("%s: run failed; retrying with backoff", self.name, exc_info=exc)
        else:
            log.warning("%s: run failed again (%d in a row): %s", self.name, self.failing, self.last_error)
