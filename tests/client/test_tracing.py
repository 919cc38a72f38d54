"""OpenTelemetry through the queue with the Python client and Worker: an Enqueue within a span
puts its trace context in the job's headers; the handler runs in a CONSUMER span, the child of the
PRODUCER span on the first attempt and linked to it on a retry. A malformed or huge traceparent
never breaks a job. (The SDK's in-memory exporter: the global tracer provider is set once.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spool
from spool.v1 import job_pb2
from tests.client.conftest import serving
from tests.conftest import wait_until

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def _run_until_done(client: spool.AsyncClient, queue: str, job_ids: list[str], handler: object) -> None:
    worker = spool.Worker(client, poll_wait=timedelta(seconds=1))
    worker.handler(queue)(handler)  # type: ignore[arg-type]

    async def finished() -> bool:
        states = [(await client.get(i)).state for i in job_ids]
        return all(s == job_pb2.Job.STATE_SUCCEEDED for s in states)

    async with serving(worker):
        await wait_until(finished, within=30)


async def test_a_handler_span_is_the_child_of_the_enqueue_and_a_retry_links_to_it(
    client: spool.AsyncClient, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("checkout") as checkout:
        job = await client.enqueue(
            "traced",
            {"order": 7},
            max_attempts=2,
            backoff=spool.Backoff("fixed", timedelta(milliseconds=50), jitter=False),
        )
    assert job.headers["traceparent"].startswith(f"00-{checkout.get_span_context().trace_id:032x}-")
    seen: list[int] = []

    async def handle(active: spool.ActiveJob) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        if active.attempt == 1:
            raise RuntimeError("first try fails")

    await _run_until_done(client, "traced", [job.id], handle)
    (send,) = _named(spans, "traced send")
    assert send.kind == trace.SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == checkout.get_span_context().span_id
    first, retry = sorted(_named(spans, "traced process"), key=lambda s: s.attributes["messaging.spool.attempt"])
    assert first.kind == trace.SpanKind.CONSUMER and first.parent is not None
    assert first.parent.span_id == send.context.span_id and first.context.trace_id == send.context.trace_id
    assert first.status.status_code == trace.StatusCode.ERROR
    assert first.attributes["messaging.system"] == "spool"
    assert first.attributes["messaging.destination.name"] == "traced"
    assert first.attributes["messaging.message.id"] == job.id
    assert retry.parent is None and [link.context.span_id for link in retry.links] == [send.context.span_id]
    assert seen == [first.context.trace_id, retry.context.trace_id], "the handler runs inside its span"


@pytest.mark.parametrize(
    "traceparent", ["zz-not-a-traceparent", "00-" + "f" * 7000, "00-" + "0" * 32 + "-" + "0" * 16 + "-01"]
)
async def test_a_malformed_or_huge_traceparent_never_breaks_a_job(
    client: spool.AsyncClient, spans: InMemorySpanExporter, traceparent: str
) -> None:
    job = await client.enqueue("badtrace", {}, headers={"traceparent": traceparent})

    def handle(active: spool.ActiveJob) -> str:
        return "ran"

    await _run_until_done(client, "badtrace", [job.id], handle)
    (span,) = _named(spans, "badtrace process")
    assert span.parent is None and not span.links


async def test_no_span_and_no_header_outside_a_trace(client: spool.AsyncClient, spans: InMemorySpanExporter) -> None:
    job = await client.enqueue("untraced", {})
    assert "traceparent" not in job.headers
    await _run_until_done(client, "untraced", [job.id], lambda active: None)
    assert spans.get_finished_spans() == ()


async def test_a_10_kb_traceparent_is_refused_naming_the_header(client: spool.AsyncClient) -> None:
    with pytest.raises(spool.errors.InvalidArgument) as caught:
        await client.enqueue("badtrace", {}, headers={"traceparent": "00-" + "f" * 10_240})
    assert "headers['traceparent']" in str(caught.value)
