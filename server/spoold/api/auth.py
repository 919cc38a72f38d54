"""The gRPC door's key check: one interceptor that runs the transport-neutral Gate before every
Spool method and makes its Principal the request's `current` caller. Health and reflection stay open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api.errors import abort, internal_status, request_id, to_status
from spoold.api.interceptors import MethodWrapper
from spoold.auth.gate import Gate
from spoold.auth.principal import current
from spoold.errors import SpoolError

Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)


def authorization(context: Context) -> list[str]:
    return [v for k, v in context.invocation_metadata() or () if k == "authorization" and isinstance(v, str)]


class AuthGuard(MethodWrapper):
    """Put first among the interceptors, so that a refused call is answered before anything else runs."""

    def __init__(self, gate: Gate, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._gate = gate

    async def _admit(self, method: str, context: Context) -> None:
        try:
            current.set(await self._gate.admit(method, authorization(context)))
        except SpoolError as err:
            log.info("refused %s: %s (%s)", method, err.reason, err.metadata.get("key_id", "no key id"))
            await abort(context, to_status(err))
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception:
            rid = request_id(context)
            log.exception("request %s: checking the key of %s failed", rid, method)
            await abort(context, internal_status(rid))

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
