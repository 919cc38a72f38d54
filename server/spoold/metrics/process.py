"""This process's health as metrics, read on each scrape: its background loops (runs, failures,
time spent, last success) and its database pool (connections in use, calls waiting to share a
statement)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spoold.loops.base import Loop


class LoopCollector(Collector):
    def __init__(self, loops: Callable[[], Sequence[Loop]]) -> None:
        self._loops = loops

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("spool_loop_runs", "Completed runs of each background loop", labels=["loop"])
        failures = CounterMetricFamily("spool_loop_failures", "Failed runs of each background loop", labels=["loop"])
        seconds = CounterMetricFamily(
            "spool_loop_run_seconds", "Time spent in runs of each background loop, completed or failed", labels=["loop"]
        )
        last = GaugeMetricFamily(
            "spool_loop_last_success_timestamp_seconds",
            "When each background loop last completed a run (Unix time; absent before its first)",
            labels=["loop"],
        )
        failing = GaugeMetricFamily(
            "spool_loop_failing", "Failed runs of each loop since its last completed one", labels=["loop"]
        )
        for loop in self._loops():
            s = loop.stats()
            runs.add_metric([s.name], s.runs)
            failures.add_metric([s.name], s.failures)
            seconds.add_metric([s.name], s.run_seconds)
            failing.add_metric([s.name], s.failing)
            if s.last_success is not None:
                last.add_metric([s.name], s.last_success)
        yield from (runs, failures, seconds, last, failing)


class PoolCollector(Collector):
    def __init__(self, pool: Callable[[], asyncpg.Pool | None], waiting: Callable[[], int]) -> None:
        self._pool = pool
        self._waiting = waiting

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        if pool is None:
            return
        connections = GaugeMetricFamily(
            "spool_db_pool_connections", "This process's database connections, by state", labels=["state"]
        )
        idle = pool.get_idle_size()
        connections.add_metric(["idle"], idle)
        connections.add_metric(["busy"], pool.get_size() - idle)
        yield connections
        yield GaugeMetricFamily("spool_db_pool_max", "The most connections the pool opens", value=pool.get_max_size())
        yield GaugeMetricFamily(
            "spool_db_calls_waiting",
            "Enqueue, Lease and Ack calls waiting for the statement before theirs (coalescing)",
            value=self._waiting(),
        )
