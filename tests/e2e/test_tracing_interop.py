"""One trace across languages: a Python producer's span, its Enqueue through spoold (spoold's SERVER
span, the child of the PRODUCER span by the call's traceparent metadata), the Node Worker's handler
span (the child of the Python PRODUCER span), the follow-up job the Node handler enqueues, and the
Python Worker's handler span for it: all one trace. Each side uses its SDK's own exporter (Python
and spoold, in this process: in memory; Node: printed as JSON lines)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spool
from spool.v1 import job_pb2
from spoold.app import App
from spoold.config import Settings
from tests.client.conftest import serving
from tests.client.test_tracing import spans
from tests.conftest import wait_until

__all__ = ["spans"]


@pytest.fixture
async def app(db_url: str, settings: Settings, spans: InMemorySpanExporter) -> AsyncIterator[App]:
    """spoold with tracing on, its spans made by the same (global) provider as the producer's."""
    server = App(settings, db_url, tracer_provider=trace.get_tracer_provider())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_one_trace_from_a_python_producer_through_a_node_worker_and_back(
    client: spool.AsyncClient, address: str, node: Any, spans: InMemorySpanExporter
) -> None:
    worker = await node("traced-worker.js", address, "to-node", "back-to-python")
    await worker.line_where("ready")
    with trace.get_tracer("test").start_as_current_span("checkout") as checkout:
        await client.enqueue("to-node", {"order": 7})
    trace_id = f"{checkout.get_span_context().trace_id:032x}"
    (send,) = [s for s in spans.get_finished_spans() if s.name == "to-node send"]
    (served,) = [s for s in spans.get_finished_spans() if s.name == "spool.v1.QueueService/Enqueue"]
    assert served.kind == trace.SpanKind.SERVER and f"{served.context.trace_id:032x}" == trace_id
    assert served.parent is not None and served.parent.span_id == send.context.span_id
    assert served.attributes is not None and served.attributes["messaging.destination.name"] == "to-node"

    handled = await worker.line_where("span", "to-node process", within=30)
    assert handled["traceId"] == trace_id and handled["kind"] == trace.SpanKind.CONSUMER.value
    assert handled["parentSpanId"] == f"{send.context.span_id:016x}"
    assert handled["attributes"]["messaging.destination.name"] == "to-node"
    # The handler's own enqueue ended before the handler did: those lines came first.
    (node_send,) = [line for line in worker.lines if line.get("span") == "back-to-python send"]
    assert node_send["traceId"] == trace_id and node_send["parentSpanId"] == handled["spanId"]
    (back,) = [line["back"] for line in worker.lines if "back" in line]
    (node_served,) = [
        s for s in spans.get_finished_spans() if s.name == "spool.v1.QueueService/Enqueue" and s is not served
    ]
    assert node_served.parent is not None and f"{node_served.parent.span_id:016x}" == node_send["spanId"]

    python = spool.Worker(client, poll_wait=timedelta(seconds=1))

    @python.handler("back-to-python")
    async def handle(job: spool.ActiveJob) -> None:
        pass

    async def done() -> bool:
        return (await client.get(back)).state == job_pb2.Job.STATE_SUCCEEDED

    async with serving(python):
        await wait_until(done, within=30)
    await worker.stop()
    (last,) = [s for s in spans.get_finished_spans() if s.name == "back-to-python process"]
    assert f"{last.context.trace_id:032x}" == trace_id
    assert last.parent is not None and f"{last.parent.span_id:016x}" == node_send["spanId"]
