"""OpenTelemetry across the queue, off (and free) unless opentelemetry-api is installed and the
program set a tracer provider (the SDK's, with an exporter: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
is set, as the SDK's own configuration does).

Enqueue, called within a span, runs in a PRODUCER span `<queue> send` whose W3C context
(traceparent, tracestate) goes into each job's headers, and into the Enqueue call's own metadata
(so that spoold's SERVER span, when spoold traces, is its child too). The Worker runs a handler of a job that
carries a traceparent in a CONSUMER span `<queue> process`: the child of the producer span on the
first attempt, linked to it on retries. Attributes follow the messaging semantic conventions. A
malformed or huge traceparent is ignored (the span has no parent); nothing here raises into a job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # tracing is an optional extra
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from spool.job import ActiveJob

SYSTEM = "spool"
TRACEPARENT = "traceparent"


def _tracer() -> Any:
    """The tracer, or None when tracing is off (no API, or no provider set: the default proxy)."""
    if trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    return trace.get_tracer("spool")


@contextlib.contextmanager
def send_span(queue: str, count: int = 1) -> Iterator[MutableMapping[str, str] | None]:
    """Around an Enqueue made within a span: the headers to add to each job, else None."""
    tracer = _tracer()
    if tracer is None or not trace.get_current_span().get_span_context().is_valid:
        yield None
        return
    attributes: dict[str, str | int] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with tracer.start_as_current_span(f"{queue} send", kind=trace.SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


@contextlib.contextmanager
def process_span(job: ActiveJob) -> Iterator[None]:
    """Around a handler: its CONSUMER span, when tracing is on and the job carries a traceparent."""
    tracer = _tracer() if TRACEPARENT in job.headers else None
    if tracer is None:
        yield
        return
    carrier = {k: job.headers[k] for k in (TRACEPARENT, "tracestate") if k in job.headers}
    try:
        sent = propagate.extract(carrier)
    except Exception:  # a propagator that chokes on a bad header: trace without a parent
        sent = None
    producer = trace.get_current_span(sent).get_span_context() if sent is not None else None
    valid = producer is not None and producer.is_valid
    retry = job.attempt > 1
    with tracer.start_as_current_span(
        f"{job.queue} process",
        context=sent if valid and not retry else trace.set_span_in_context(trace.INVALID_SPAN),
        kind=trace.SpanKind.CONSUMER,
        links=[trace.Link(producer)] if valid and retry and producer is not None else None,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "messaging.spool.attempt": job.attempt,
        },
    ):
        yield
