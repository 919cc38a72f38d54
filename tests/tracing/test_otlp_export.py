"""OTLP export from a real spoold process: OTEL_EXPORTER_OTLP_ENDPOINT pointed at a small OTLP/HTTP
receiver run here, and the SERVER span of an Enqueue arrives there, the child of the caller's
traceparent, under OTEL_SERVICE_NAME. Without the optional packages, one warning and no tracing."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold import tracing
from tests.helpers import enqueue_request
from tests.test_spoold_process import free_port
from tests.tracing.conftest import PARENT_ID, TRACE_ID, TRACEPARENT


class Receiver:
    """An OTLP/HTTP endpoint: keeps each POST /v1/traces body, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.paths.append(self.path)
                received.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        """Each span received, with its resource's string attributes."""
        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                out += [(resource, s) for scope in resource_spans.scope_spans for s in scope.spans]
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


async def test_spoold_exports_its_server_spans_with_otlp(db_url: str, receiver: Receiver) -> None:
    port = free_port()
    env = {
        "SPOOL_DATABASE_URL": db_url,
        "SPOOL_HTTP_PORT": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "spoold-under-test",
        "PATH": "/usr/bin:/bin",
    }
    spoold = Path(sys.executable).parent / "spoold"
    proc = await asyncio.create_subprocess_exec(
        str(spoold), "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while not any(line.startswith("tracing: ") for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert raw, f"spoold exited: {lines}"
            lines.append(raw.decode().split(": ", 1)[-1].strip())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            job = (
                await QueueServiceStub(channel).Enqueue(
                    enqueue_request("exported"), metadata=(("traceparent", TRACEPARENT),)
                )
            ).job
    finally:
        proc.send_signal(signal.SIGTERM)  # the batched spans are sent before the process ends
        _, rest = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, rest.decode()
    assert any("service.name spoold-under-test" in line for line in lines), lines
    assert set(receiver.paths) == {"/v1/traces"}
    ((resource, span),) = [(r, s) for r, s in receiver.spans() if s.name == "spool.v1.QueueService/Enqueue"]
    assert resource["service.name"] == "spoold-under-test"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["messaging.message.id"].string_value == job.id
    assert attributes["rpc.grpc.status_code"].int_value == 0


def test_without_the_packages_spoold_warns_once_and_serves_untraced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, "spoold.tracing"):
        assert tracing.provider() is None
    (warning,) = caplog.records
    assert "pip install 'spoold[otel]'" in warning.getMessage() and "without tracing" in warning.getMessage()
