"""The per-queue gauges, read from the database on each scrape: jobs by derived status, the age of
the oldest ready job, paused. They come from the maintained counts (migration 0018), one query of
a few hundred rows whatever the size of spool.jobs, and are the same in every replica: take
max(), not sum(), across replicas (docs/observability.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

import asyncpg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spoold.store.queues import QueueStore

log = logging.getLogger(__name__)

STATUSES = ("ready", "scheduled", "retrying", "running", "succeeded", "dead", "cancelled", "waiting")
# A scrape waits this long for the database; after it, the gauges are left out and _up says 0.
TIMEOUT = 5.0


class QueueGauges(Collector):
    def __init__(self, store: QueueStore, timeout: float = TIMEOUT) -> None:
        self._store = store
        self._timeout = timeout
        self._rows: Sequence[asyncpg.Record] = ()
        self._up = False
        self._seconds = 0.0

    async def refresh(self) -> None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                self._rows, self._up = await self._store.gauges(), True
        except Exception:  # the scrape still answers this process's own metrics
            log.warning("metrics: the queue gauges could not be read from the database", exc_info=True)
            self._rows, self._up = (), False
        self._seconds = time.perf_counter() - start

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "spool_queue_jobs", "Jobs by queue and derived status, in the database", labels=["queue", "status"]
        )
        age = GaugeMetricFamily(
            "spool_queue_oldest_ready_age_seconds",
            "How long the oldest ready job of each queue has been ready (0: none is), in the database",
            labels=["queue"],
        )
        paused = GaugeMetricFamily("spool_queue_paused", "1 when the queue is paused", labels=["queue"])
        for r in self._rows:
            q = r["queue"]
            for status in STATUSES:
                jobs.add_metric([q, status], r[status])
            age.add_metric([q], r["lag"] or 0.0)
            paused.add_metric([q], 1.0 if r["paused"] else 0.0)
        yield from (jobs, age, paused)
        yield GaugeMetricFamily(
            "spool_queue_gauges_up", "1 when this scrape read the queue gauges from the database", value=int(self._up)
        )
        yield GaugeMetricFamily(
            "spool_queue_gauges_seconds", "How long this scrape took to read the queue gauges", value=self._seconds
        )
