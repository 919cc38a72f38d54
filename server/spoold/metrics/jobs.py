"""What happened to jobs in this process, by queue: event counters and two histograms (attempt
duration, pickup lag). JobStore calls it once per statement with the rows the statement returned.

The hot path runs once per job, so this keeps plain dicts and lists (one event loop, no locks)
instead of prometheus_client's locked values, and turns them into metric families on a scrape.
Queue names come from callers: past MAX_QUEUES distinct ones, new queues are counted as OTHER, so
a flood of made-up names cannot grow the process without bound.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

import asyncpg
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

MAX_QUEUES = 1000
OTHER = "_other"
EVENTS = (
    "enqueued",
    "deduplicated",
    "leased",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
    "released",
    "lease_expired",
    "timed_out",
)
# Seconds. Attempts run from milliseconds to hours; pickup lag is milliseconds when workers keep up.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# A job's state after a failed attempt -> the event that says so.
_AFTER_FAILURE = {"pending": "failed", "dead": "dead", "cancelled": "cancelled"}

Row = asyncpg.Record  # a row of spool.jobs as a statement returned it


class _Histogram:
    """Bucket counts (not cumulative; the last is +Inf) and the sum, per label values."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def family(self, name: str, documentation: str, labels: Sequence[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for values, counts in sorted(self.series.items()):
            total, buckets = 0.0, []
            for bound, n in zip((*map(str, self.bounds), "+Inf"), counts[:-1], strict=True):
                total += n
                buckets.append((bound, total))
            family.add_metric(list(values), buckets, counts[-1])
        return family


class JobMetrics(Collector):
    def __init__(self, max_queues: int = MAX_QUEUES) -> None:
        self._max_queues = max_queues
        self._queues: set[str] = set()
        self.events: dict[tuple[str, str], int] = {}
        self.attempts = _Histogram(ATTEMPT_BUCKETS)
        self.lag = _Histogram(LAG_BUCKETS)

    def _queue(self, name: str) -> str:
        if name in self._queues:
            return name
        if len(self._queues) >= self._max_queues:
            return OTHER
        self._queues.add(name)
        return name

    def count(self, event: str, queues: Iterable[str]) -> None:
        events = self.events
        for q in queues:
            key = (self._queue(q), event)
            events[key] = events.get(key, 0) + 1

    def enqueued(self, queues: Iterable[str], deduplicated: Iterable[bool]) -> None:
        for q, dup in zip(queues, deduplicated, strict=True):
            self.count("deduplicated" if dup else "enqueued", (q,))

    def leased(self, rows: Iterable[Row]) -> None:
        """Claimed rows: started_at is the claim, run_at when the job became ready."""
        for r in rows:
            q = self._queue(r["queue"])
            self.count("leased", (q,))
            self.lag.observe((q,), max(0.0, (r["started_at"] - r["run_at"]).total_seconds()))

    def succeeded(self, rows: Iterable[Row]) -> None:
        """Acked rows, each with its queue and either `took` (the attempt's seconds) or the whole row."""
        for r in rows:
            q = self._queue(r["queue"])
            self.count("succeeded", (q,))
            took = r.get("took")
            if took is None:
                took = (r["finished_at"] - r["started_at"]).total_seconds()
            self.attempts.observe((q, "succeeded"), took)

    def nacked(self, row: Row, released: bool) -> None:
        """A nacked row: its state after, and updated_at, the end of the attempt."""
        q = self._queue(row["queue"])
        event = "released" if released and row["state"] == "pending" else _AFTER_FAILURE.get(row["state"])
        if event is not None:
            self.count(event, (q,))
        outcome = "released" if event == "released" else "failed"
        self.attempts.observe((q, outcome), max(0.0, (row["updated_at"] - row["started_at"]).total_seconds()))

    def cancelled(self, row: Row) -> None:
        """A row CancelJob updated: counted when it ended CANCELLED (a RUNNING one ends at its Nack)."""
        if row["state"] == "cancelled":
            self.count("cancelled", (row["queue"],))

    def reaped(self, rows: Iterable[Row]) -> None:
        """Rows the reaper ended: queue, state after, timed_out, and `took`."""
        for r in rows:
            q = self._queue(r["queue"])
            cause = "timed_out" if r["timed_out"] else "lease_expired"
            self.count(cause, (q,))
            after = _AFTER_FAILURE.get(r["state"])
            if after is not None:
                self.count(after, (q,))
            self.attempts.observe((q, cause), r["took"])

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "spool_job_events", "Jobs by queue and event, counted by this process", labels=["queue", "event"]
        )
        for (queue, event), n in sorted(self.events.items()):
            events.add_metric([queue, event], n)
        yield events
        yield self.attempts.family(
            "spool_attempt_duration_seconds",
            "Attempts ended by this process, from lease to end, by queue and outcome",
            ["queue", "outcome"],
        )
        yield self.lag.family(
            "spool_pickup_lag_seconds", "From ready (run_at) to leased, for jobs this process leased", ["queue"]
        )
