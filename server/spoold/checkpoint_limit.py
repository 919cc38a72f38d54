"""How often one job may checkpoint: a Heartbeat carrying a checkpoint sooner than
`min_interval` after the job's last admitted one is refused (CheckpointRateLimited, with the
delay after which it would be admitted), so that a worker cannot write a job's checkpoint (up
to max_payload_bytes each) to the WAL as fast as it can send it. A heartbeat without a
checkpoint is never counted or refused.

The state is this process's: with several replicas behind a balancer, a job's checkpoints that
reach different replicas are limited by each apart (at most one per interval per replica).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The table is swept of entries older than the interval whenever it has doubled since the last sweep.
_SWEEP_FROM = 1024


class CheckpointLimit:
    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._last: dict[int, float] = {}  # job id -> when its last checkpoint was admitted
        self._sweep_at = _SWEEP_FROM

    def admit(self, job_id: int) -> float | None:
        """None if the job may checkpoint now (and counts it), else the seconds until it may."""
        if self.min_interval <= 0:
            return None
        now = self._clock()
        last = self._last.get(job_id)
        if last is not None and now - last < self.min_interval:
            return self.min_interval - (now - last)
        self._last[job_id] = now
        if len(self._last) >= self._sweep_at:
            self._last = {j: t for j, t in self._last.items() if now - t < self.min_interval}
            self._sweep_at = max(_SWEEP_FROM, 2 * len(self._last))
        return None

    def __len__(self) -> int:
        return len(self._last)
