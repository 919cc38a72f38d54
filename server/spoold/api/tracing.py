"""OpenTelemetry SERVER spans for Spool's RPCs, made at the doors: one gRPC interceptor (`RpcTracer`)
and the HTTP door's single entry point (http/door.py) share `ServerSpans`, so no method has code of
its own here. Imported only when tracing is on (app.py): off, no interceptor is installed at all.

A span is named after the method's path (`spool.v1.QueueService/Enqueue`), is the child of the
context in the call's `traceparent`/`tracestate` metadata or HTTP headers (the global propagator's
fields), and carries the rpc.* attributes of the semantic conventions with the status code the call
ended with, plus the queue and job id where the request (or Enqueue's answer) names them, under the
messaging.* names the Workers use. A malformed or huge traceparent is ignored: the span is a root.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from spoold.api.interceptors import Context, MethodWrapper, status_of
from spoold.logformat import noted_call

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]

# Server spans of these codes are errors (the gRPC semantic conventions); the others are the caller's.
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_SYSTEM = {"grpc": "grpc", "http": "connect_rpc"}


class ServerSpans:
    def __init__(self, provider: trace.TracerProvider) -> None:
        from spoold import __version__

        self._tracer = provider.get_tracer("spoold", __version__)
        self._fields = frozenset(propagate.get_global_textmap().fields)
        self._names: dict[str, tuple[str, str, str]] = {}

    def _parent(self, headers: Iterable[tuple[Any, Any]]) -> Any:
        carrier: dict[str, str] = {}
        for key, value in headers:
            name = key.decode("latin-1").lower() if isinstance(key, bytes) else key
            if name in self._fields:
                carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if not carrier:
            return None
        try:
            return propagate.extract(carrier)
        except Exception:  # a propagator that chokes on a bad header: the span is a root
            return None

    def start(self, path: str, door: str, headers: Iterable[tuple[Any, Any]]) -> Span:
        """The SERVER span of a call to `path` (`/spool.v1.QueueService/Enqueue`) through `door`."""
        names = self._names.get(path)
        if names is None:
            service, _, method = path.lstrip("/").partition("/")
            names = self._names[path] = (f"{service}/{method}", service, method)
        attributes = {"rpc.system": _SYSTEM[door], "rpc.service": names[1], "rpc.method": names[2]}
        return self._tracer.start_span(
            names[0], context=self._parent(headers), kind=SpanKind.SERVER, attributes=attributes
        )

    def end(self, span: Span, code: tuple[str, int], about: tuple[str, str] | None, answer: object) -> None:
        """Ends the span with the call's status code (name, number), and what is known of its
        queue and job: `about` from the request, else the job in the answer."""
        attributes: dict[str, str | int] = {"rpc.grpc.status_code": code[1]}
        job_id, queue = about or ("", "")
        found = getattr(answer, "job", None)
        if not job_id and found is not None:
            job_id, queue = found.id, queue or found.queue
        if queue:
            attributes["messaging.system"] = "spool"
            attributes["messaging.destination.name"] = queue
        if job_id:
            attributes["messaging.message.id"] = job_id
        span.set_attributes(attributes)  # one call: each takes the span's lock
        if code[0] in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code[0]))
        span.end()


def _pair(code: grpc.StatusCode) -> tuple[str, int]:
    return code.name, code.value[0]


class RpcTracer(MethodWrapper):
    """The gRPC door's spans; the queue and job id come from what the request decoder noted
    (logformat.note_call, in api/decoding.py), as the log lines' do."""

    def __init__(self, spans: ServerSpans, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._spans = spans

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        if handler.request_streaming:
            return None
        spans = self._spans
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary  # typed for the sync API; on grpc.aio it is a coroutine function

            async def unary_behavior(request: Any, context: Context) -> Any:
                span = spans.start(method, "grpc", context.invocation_metadata() or ())
                answer = exc = None
                try:
                    answer = await unary(request, context)
                    return answer
                except BaseException as err:
                    exc = err
                    raise
                finally:
                    spans.end(span, _pair(status_of(context, exc)), noted_call(), answer)

            return grpc.unary_unary_rpc_method_handler(
                unary_behavior, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            streaming: Any = handler.unary_stream

            async def stream_behavior(request: Any, context: Context) -> AsyncIterator[Any]:
                span = spans.start(method, "grpc", context.invocation_metadata() or ())
                exc = None
                try:
                    async for item in streaming(request, context):
                        yield item
                except BaseException as err:
                    exc = err
                    raise
                finally:
                    spans.end(span, _pair(status_of(context, exc)), noted_call(), None)

            return grpc.unary_stream_rpc_method_handler(
                stream_behavior, handler.request_deserializer, handler.response_serializer
            )
        return None
