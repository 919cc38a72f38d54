"""The shape shared by Spool's server interceptors: wrap the handler of each method under a
prefix once, and hand back the same wrapped handler on every later call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


class MethodWrapper(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap one method's handler (`wrap`); None leaves it as it is."""

    def __init__(self, prefix: str = "/spool.") -> None:
        self._prefix = prefix
        self._wrapped: dict[str, Handler | None] = {}

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
        if method not in self._wrapped:
            self._wrapped[method] = self.wrap(method, handler)
        return self._wrapped[method] or handler
