"""spoold's OpenTelemetry tracer provider: made only when tracing is on (Settings.tracing, from the
standard OTEL_* variables), and only if the optional packages are installed (`pip install
'spoold[otel]'`); else one warning line and spoold runs without tracing.

The SDK reads its own variables: OTEL_SERVICE_NAME (spoold's default: `spoold`),
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, and the exporter's
OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout, compression). Spans leave through a
BatchSpanProcessor (OTEL_BSP_* tune it), so an RPC never waits on the collector. The spans
themselves are made at the doors (api/tracing.py).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SERVICE_NAME = "spoold"
EXTRA = "pip install 'spoold[otel]'"


def provider() -> Any | None:
    """A TracerProvider exporting with OTLP over HTTP, or None (logged) when the packages are missing."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "tracing: OTLP export is asked for (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER), but %s "
            "is not installed (%s); serving without tracing",
            exc.name or "opentelemetry",
            EXTRA,
        )
        return None
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, as the SDK reads them
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    made = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER, parent-based by default
    made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return made


def describe(made: Any) -> str:
    """The start-up line's words for tracing that is on."""
    resource = getattr(made, "resource", None)
    name = resource.attributes.get("service.name") if resource is not None else None
    return f"on, a SERVER span per RPC (service.name {name}), exported with OTLP/HTTP in batches"
