"""A spoold (gRPC and HTTP doors) whose SERVER spans go to the SDK's in-memory exporter, through the
App's tracer_provider hook: a provider of its own, not the process's global one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spoold.app import App
from tests.http.conftest import http_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def app(db_url: str, exporter: InMemorySpanExporter) -> AsyncIterator[App]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = App(http_settings(), db_url, tracer_provider=provider)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def server_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans of method `name` (`Enqueue`), oldest first."""
    return [s for s in exporter.get_finished_spans() if s.name == f"spool.v1.QueueService/{name}"]
