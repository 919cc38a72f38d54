"""Prometheus metrics for spoold (docs/observability.md): one registry per App, holding this
process's counters (RPCs, job events, loops, pool) and, refreshed from the database on each scrape,
the per-queue gauges that every replica reports alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from spoold.metrics.jobs import JobMetrics
from spoold.metrics.rpc import RpcMetrics

Refresh = Callable[[], Awaitable[None]]

__all__ = ["JobMetrics", "Metrics", "RpcMetrics"]


class Metrics:
    def __init__(self) -> None:
        # No `_created` series: Prometheus does without them, and they double the output.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.rpc = RpcMetrics(self.registry)
        self.jobs = JobMetrics()
        self.registry.register(self.jobs)
        self._refreshes: list[Refresh] = []

    def add(self, collector: Collector, refresh: Refresh | None = None) -> None:
        """Registers a collector; refresh, if given, is awaited before each scrape reads it."""
        self.registry.register(collector)
        if refresh is not None:
            self._refreshes.append(refresh)

    async def render(self) -> tuple[bytes, str]:
        """The scrape's body and content type."""
        for refresh in self._refreshes:
            await refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
