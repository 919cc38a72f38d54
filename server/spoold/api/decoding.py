"""The gRPC door's adapter around each Spool method: it decodes the request, and answers the
domain errors the service code raises as gRPC statuses (api/errors.py).

Requests that do not parse are bad input. grpc answers a request_deserializer's exception with
UNKNOWN; protobuf.js and hand-rolled clients can send a string field with invalid UTF-8, or a
truncated message, so Spool's methods decode their requests themselves and answer INVALID_ARGUMENT."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError, Message

from spoold.api import calls, counts, shallow
from spoold.api.errors import abort, failure, to_status
from spoold.api.interceptors import MethodWrapper
from spoold.config import Limits
from spoold.errors import InvalidArgument, SpoolError
from spoold.logformat import note_call

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


class DecodeGuard(MethodWrapper):
    """Wraps the unary-request methods of the services under `prefix` (health and reflection keep
    grpc's own); a decoded request's repeated fields are held to their caps (api/counts.py)."""

    def __init__(self, limits: Limits, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._limits = limits

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        return _guarded(method, handler, self._limits)


def _guarded(method: str, handler: Handler, limits: Limits) -> Handler | None:
    found = handler.request_deserializer
    if found is None or handler.request_streaming:
        return None
    budget = counts.byte_budget(method, limits)
    # The message type, for counting a large request's entries before decoding it (api/shallow.py).
    request_type = getattr(found, "__self__", None)
    if not (isinstance(request_type, type) and issubclass(request_type, Message)):
        request_type = None

    def decode(raw: bytes) -> Any:
        if budget is not None and len(raw) > budget:
            raise counts.too_large(method, len(raw), limits)
        if request_type is not None and len(raw) > counts.SMALL_REQUEST_BYTES:
            shallow.check(request_type, raw, limits)
        return found(raw)

    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary  # typed for the sync API; on grpc.aio it is a coroutine function

        async def unary_behavior(raw: bytes, context: Context) -> Any:
            request = await _decoded(method, decode, raw, context, limits)
            try:
                return await unary(request, context)
            except Exception as exc:
                await abort(context, to_status(failure(exc, method)))

        return grpc.unary_unary_rpc_method_handler(unary_behavior, None, handler.response_serializer)
    if handler.unary_stream is not None:
        streaming: Any = handler.unary_stream

        async def stream_behavior(raw: bytes, context: Context) -> AsyncIterator[Any]:
            result = streaming(await _decoded(method, decode, raw, context, limits), context)
            try:
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a method that writes with context.write() instead of yielding
                    await result
            except Exception as exc:
                await abort(context, to_status(failure(exc, method)))

        return grpc.unary_stream_rpc_method_handler(stream_behavior, None, handler.response_serializer)
    return None


async def _decoded(method: str, decode: Callable[[bytes], Any], raw: bytes, context: Context, limits: Limits) -> Any:
    try:
        request = decode(raw)
        counts.check(request, limits)
    except DecodeError as exc:
        await abort(context, to_status(InvalidArgument("request", f"cannot be decoded: {str(exc)[:200]}")))
        raise AssertionError("unreachable: abort raises") from exc
    except SpoolError as exc:
        await abort(context, to_status(exc))
        raise AssertionError("unreachable: abort raises") from exc
    # The call's fields for every log line written while it is served (logformat.py).
    note_call(method, request, context.peer())
    if log.isEnabledFor(logging.DEBUG):
        log.debug("gRPC %s, request %s", method, calls.request_id())  # key, job, queue, peer: fields
    return request
