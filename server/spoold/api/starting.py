"""Until spoold has opened its database, Spool's methods answer UNAVAILABLE (DATABASE_UNAVAILABLE),
which every client retries; health (NOT_SERVING meanwhile) and reflection answer as usual."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api.errors import abort, to_status
from spoold.errors import Unavailable

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]

_WAITING = Unavailable("spoold is starting: it is waiting for its database; retry")


async def _refuse(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await abort(context, to_status(_WAITING))


class StartGate(grpc.aio.ServerInterceptor):
    """Closed until `open()`: every call under `prefix` is refused as above, registered or not yet.
    (A server-streaming call refused by this unary handler ends with the same status: the answer
    is trailers only either way.)"""

    def __init__(self, prefix: str = "/spool.") -> None:
        self._prefix = prefix
        self.is_open = False
        self._refused: Handler = grpc.unary_unary_rpc_method_handler(_refuse)

    def open(self) -> None:
        self.is_open = True

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        if self.is_open or not handler_call_details.method.startswith(self._prefix):
            return await continuation(handler_call_details)
        return self._refused


class Deferred:
    """Stands in for a servicer, so that its methods are registered before the server starts
    (grpc takes no registered methods after): each call goes to `target`, set once the database is
    open. No call reaches it before, as the StartGate refuses them."""

    def __init__(self) -> None:
        self.target: object | None = None

    def __getattr__(self, name: str) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: Any) -> Any:
            return getattr(self.target, name)(request, context)

        return call
