"""The streams that wait by design (WatchJob and the REST events route, WatchPipeline, TailJobs,
WatchCancels) held open at once in this process: SPOOL_MAX_WATCHERS bounds them all together, so
that no kind of stream can hold memory, tasks and file descriptors without bound."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from spoold.errors import LimitReached

# Streams are long-lived: a slot frees when one ends, so a refused watcher waits a few seconds
# rather than asking again at once with every other refused one.
RETRY_DELAY = 5.0


@dataclass
class Streams:
    limit: int  # 0: no limit
    count: int = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """One stream's slot while the block runs; LimitReached (RESOURCE_EXHAUSTED) if none is free."""
        if self.limit and self.count >= self.limit:
            raise LimitReached(
                "WATCHERS_LIMIT_REACHED",
                f"this server holds {self.count} streams (WatchJob, WatchPipeline, TailJobs, WatchCancels) "
                "already, its limit (SPOOL_MAX_WATCHERS); retry later, or on another replica",
                retry_delay=RETRY_DELAY,
                limit=str(self.limit),
            )
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
