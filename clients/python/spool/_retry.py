"""Capped exponential backoff with full jitter, for calls that are safe to repeat."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import grpc

# Codes worth a second try: the server, or its database, was briefly out of reach.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
# What a worker rides out: the answer was lost or never came. Repeating a Heartbeat is harmless, and
# repeating an Ack or Nack that did land is answered LEASE_LOST, which the worker takes as settled.
# CANCELLED arrives when a stopping server cuts an in-flight call (our own cancellations raise
# asyncio.CancelledError instead), so it is as transient as UNAVAILABLE here.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
# What a worker never takes as the server's answer: besides TRANSIENT, a server fault (INTERNAL,
# UNKNOWN) or an aborted call says nothing about the request, which may even have landed. A worker
# repeats its Lease, Ack and Nack through these (with backoff, never giving up): an Ack that did land
# is answered LEASE_LOST the second time, with the job SUCCEEDED, and counts as done. Only a
# definitive answer (a refused result, a lost lease, a missing job, a denied key) ends the retries.
UNANSWERED = TRANSIENT | frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, grpc.StatusCode.DATA_LOSS}
)


@dataclass(frozen=True)
class RetryPolicy:
    """Delays initial * multiplier**n capped at maximum, each drawn uniformly from [0, delay] (full jitter)."""

    initial: timedelta = timedelta(milliseconds=100)
    maximum: timedelta = timedelta(seconds=5)
    multiplier: float = 2.0
    # Tries in all, the first included; 0 retries forever (what a worker wants, never a script).
    attempts: int = 8

    def delays(self) -> Iterator[float]:
        """Seconds to sleep before each retry; ends when the attempts are spent."""
        retries = 0
        while self.attempts == 0 or retries < self.attempts - 1:
            # The exponent stops at 32: the cap is reached long before, and the power stays finite.
            growth = self.multiplier ** min(retries, 32)
            yield random.uniform(0, min(self.maximum.total_seconds(), self.initial.total_seconds() * growth))
            retries += 1

    def forever(self) -> RetryPolicy:
        return RetryPolicy(self.initial, self.maximum, self.multiplier, attempts=0)


NO_RETRY = RetryPolicy(attempts=1)
DEFAULT_RETRY = RetryPolicy()
# Workers ride out outages: longer pauses, and they never give up.
WORKER_RETRY = RetryPolicy(initial=timedelta(milliseconds=200), maximum=timedelta(seconds=10), attempts=0)
