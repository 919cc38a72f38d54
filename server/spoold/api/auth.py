"""The gRPC door's key check: one interceptor that runs the transport-neutral Gate before every
Spool method and makes its Principal the request's `current` caller. Health and reflection stay open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api.errors import abort, to_status
from spoold.auth.gate import Gate
from spoold.auth.principal import current
from spoold.errors import SpoolError

Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)


def authorization(context: Context) -> list[str]:
    return [v for k, v in context.invocation_metadata() or () if k == "authorization" and isinstance(v, str)]


class AuthGuard(grpc.aio.ServerInterceptor):
    """Put first among the interceptors, so that a refused call is answered before anything else runs."""

    def __init__(self, gate: Gate, prefix: str = "/spool.") -> None:
        self._gate = gate
        self._prefix = prefix
        self._wrapped: dict[str, Handler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        if method not in self._wrapped:
            self._wrapped[method] = self._guarded(method, handler)
        return self._wrapped[method] or handler

    async def _admit(self, method: str, context: Context) -> None:
        try:
            current.set(await self._gate.admit(method, authorization(context)))
        except SpoolError as err:
            log.info("refused %s: %s (%s)", method, err.reason, err.metadata.get("key_id", "no key id"))
            await abort(context, to_status(err))

    def _guarded(self, method: str, handler: Handler) -> Handler | None:
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
