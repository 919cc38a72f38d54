"""spoold's SERVER spans, made by one gRPC interceptor and by the HTTP door's entry point: the child
of the caller's traceparent, with the rpc.* attributes and the status code, the queue and job id
where known; a bad traceparent is harmless; with tracing off no interceptor is installed at all."""

from __future__ import annotations

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.api.metering import RpcMeter
from spoold.api.tracing import RpcTracer
from spoold.app import App
from tests.conftest import test_settings as make_settings
from tests.helpers import enqueue_request
from tests.tracing.conftest import PARENT_ID, TRACE_ID, TRACEPARENT, server_spans


async def test_a_call_with_a_traceparent_is_served_in_its_child_span(
    stub: queue_service_pb2_grpc.QueueServiceStub, exporter: InMemorySpanExporter
) -> None:
    metadata = (("traceparent", TRACEPARENT), ("tracestate", "vendor=1"))
    job = (await stub.Enqueue(enqueue_request("emails"), metadata=metadata)).job
    (span,) = server_spans(exporter, "Enqueue")
    assert span.kind == SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID and span.parent.is_remote
    assert span.parent.trace_state.get("vendor") == "1"
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "spool.v1.QueueService",
        "rpc.method": "Enqueue",
        "rpc.grpc.status_code": 0,
        "messaging.system": "spool",
        "messaging.destination.name": "emails",
        "messaging.message.id": job.id,
    }
    assert span.status.status_code == StatusCode.UNSET

    await stub.GetJob(qs.GetJobRequest(job_id=job.id))  # no traceparent: a root span
    (get,) = server_spans(exporter, "GetJob")
    assert get.parent is None and get.attributes is not None
    assert get.attributes["messaging.message.id"] == job.id


async def test_an_error_call_records_its_status_code(
    stub: queue_service_pb2_grpc.QueueServiceStub, exporter: InMemorySpanExporter
) -> None:
    missing = "424242"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetJob(qs.GetJobRequest(job_id=missing), metadata=(("traceparent", TRACEPARENT),))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Enqueue(enqueue_request(""))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (get,) = server_spans(exporter, "GetJob")
    assert get.attributes is not None and get.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert get.attributes["messaging.message.id"] == missing
    assert get.status.status_code == StatusCode.UNSET  # the caller's error, not the server's
    (enqueue,) = server_spans(exporter, "Enqueue")
    assert enqueue.attributes is not None
    assert enqueue.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-" + "f" * 10_000,
        "00-zzzz-yyyy-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "",
    ],
    ids=["10KB", "garbage", "version-ff", "zero-trace-id", "upper-case", "empty"],
)
async def test_a_bad_traceparent_is_harmless(
    stub: queue_service_pb2_grpc.QueueServiceStub, exporter: InMemorySpanExporter, traceparent: str
) -> None:
    metadata = (("traceparent", traceparent), ("tracestate", "x" * 4_000))  # gRPC caps all metadata at 16 KiB
    job = (await stub.Enqueue(enqueue_request("emails"), metadata=metadata)).job
    assert job.id
    (span,) = server_spans(exporter, "Enqueue")
    assert span.parent is None and span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 0


async def test_the_http_door_traces_connect_and_rest_calls(app: App, exporter: InMemorySpanExporter) -> None:
    base = f"http://127.0.0.1:{app.http_port}"
    headers = {"traceparent": TRACEPARENT}
    async with httpx.AsyncClient() as http:
        rest = await http.post(f"{base}/v1/queues/web/jobs", json={"payload": {"n": 1}}, headers=headers)
        assert rest.status_code == 202, rest.text
        job_id = rest.json()["jobId"]
        connect = await http.post(
            f"{base}/spool.v1.QueueService/GetJob",
            json={"jobId": "nope"},
            headers={"traceparent": "00-" + "f" * 10_000},
        )
        assert connect.status_code == 400, connect.text
    (enqueue,) = server_spans(exporter, "Enqueue")
    assert enqueue.kind == SpanKind.SERVER and enqueue.parent is not None
    assert f"{enqueue.parent.span_id:016x}" == PARENT_ID and f"{enqueue.context.trace_id:032x}" == TRACE_ID
    assert enqueue.attributes is not None
    assert enqueue.attributes["rpc.system"] == "connect_rpc" and enqueue.attributes["rpc.method"] == "Enqueue"
    assert enqueue.attributes["messaging.destination.name"] == "web"
    assert enqueue.attributes["messaging.message.id"] == job_id and enqueue.attributes["rpc.grpc.status_code"] == 0
    (get,) = server_spans(exporter, "GetJob")
    assert get.parent is None and get.attributes is not None
    assert get.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_with_tracing_off_no_interceptor_is_installed(db_url: str) -> None:
    app = App(make_settings(), db_url)
    app.bind()
    try:
        assert app.spans is None and app.tracer_provider is None
        assert any(isinstance(i, RpcMeter) for i in app.installed)
        assert not any(isinstance(i, RpcTracer) for i in app.installed)
    finally:
        assert app.server is not None
        await app.server.stop(None)


def test_tracing_follows_the_standard_otel_variables() -> None:
    from spoold.config import Settings

    assert not Settings.from_env({}).tracing
    assert Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).tracing
    assert Settings.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}).tracing
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp"}).tracing
    assert not Settings.from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}).tracing
    assert not Settings.from_env({"SPOOL_TRACING": "0", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}).tracing
    assert Settings.from_env({"SPOOL_TRACING": "1"}).tracing
    assert not Settings.from_env({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}).tracing


async def test_a_call_the_key_check_refuses_is_traced_too(db_url: str, exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(make_settings(auth="required"), db_url, tracer_provider=provider)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = queue_service_pb2_grpc.QueueServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Enqueue(enqueue_request("emails"), metadata=(("traceparent", TRACEPARENT),))
    finally:
        await app.stop()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (span,) = server_spans(exporter, "Enqueue")
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
