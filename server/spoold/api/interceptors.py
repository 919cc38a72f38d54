"""The shape shared by Spool's server interceptors: wrap the handler of each method under a
prefix once, and hand back the same wrapped handler on every later call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
# What runs around each call of a method: entered before the handler, left when it has answered.
Around = Callable[[Context], AbstractAsyncContextManager[None]]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def status_of(context: Context, exc: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the handler set or aborted with, else from how it ended."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # grpc.aio may hold the code as its number
        return _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    if exc is None:
        return grpc.StatusCode.OK
    return grpc.StatusCode.CANCELLED if isinstance(exc, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN


def around(handler: Handler, each_call: Around) -> Handler | None:
    """The handler, with every call run inside each_call(context); None for client streaming,
    which Spool's methods do not use."""
    if handler.request_streaming:
        return None
    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary  # typed for the sync API; on grpc.aio it is a coroutine function

        async def unary_behavior(request: Any, context: Context) -> Any:
            async with each_call(context):
                return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_behavior, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        streaming: Any = handler.unary_stream

        async def stream_behavior(request: Any, context: Context) -> AsyncIterator[Any]:
            async with each_call(context):
                async for item in streaming(request, context):
                    yield item

        return grpc.unary_stream_rpc_method_handler(
            stream_behavior, handler.request_deserializer, handler.response_serializer
        )
    return None


class MethodWrapper(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap one method's handler (`wrap`); None leaves it as it is."""

    def __init__(self, prefix: str = "/spool.") -> None:
        self._prefix = prefix
        # Per method: the handler it was given, and its wrap. A handler can change under one method
        # name (api/starting.py refuses every method with one handler until the database is open),
        # so the wrap is made again when the handler it was made of is not the one given now.
        self._wrapped: dict[str, tuple[Handler, Handler | None]] = {}

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self.wrap(method, handler))
        return cached[1] or handler
