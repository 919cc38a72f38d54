"""The gRPC door's key check: one interceptor that runs the transport-neutral Gate before every
Spool method and makes its Principal the request's `current` caller, after taking the call's
request id. Health and reflection stay open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api import calls
from spoold.api.errors import abort, failure, to_status
from spoold.api.interceptors import MethodWrapper
from spoold.auth.gate import Gate
from spoold.auth.principal import current

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


def _headers(context: Context) -> tuple[list[str], str | None]:
    """The call's authorization values and its x-request-id, in one pass over its metadata."""
    authorization, rid = [], None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            authorization.append(value)
        elif key == calls.HEADER and isinstance(value, str):
            rid = value
    return authorization, rid


class AuthGuard(MethodWrapper):
    """Put first among the interceptors, so that a refused call is answered before anything else runs."""

    def __init__(self, gate: Gate, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._gate = gate

    async def _admit(self, method: str, context: Context) -> None:
        authorization, given = _headers(context)
        calls.begin(given)
        try:
            current.set(await self._gate.admit(method, authorization))
        except Exception as exc:
            await abort(context, to_status(failure(exc, f"checking the key of {method}")))

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        if handler.request_streaming:
            return None  # Spool has no client-streaming methods
        admit = self._admit
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary  # typed for the sync API; on grpc.aio it is a coroutine function

            async def unary_behavior(request: Any, context: Context) -> Any:
                await admit(method, context)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_behavior, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            streaming: Any = handler.unary_stream

            async def stream_behavior(request: Any, context: Context) -> AsyncIterator[Any]:
                await admit(method, context)
                async for item in streaming(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream_behavior, handler.request_deserializer, handler.response_serializer
            )
        return None
