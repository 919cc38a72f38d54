"""The gRPC door's RPC metrics: one interceptor, put first, that times every Spool method and
counts it by the status code it ended with (refusals by the key check included)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api.interceptors import Context, MethodWrapper, around
from spoold.metrics.rpc import RpcMetrics

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


def _code(context: Context, exc: BaseException | None) -> str:
    """The status the call ended with: what the handler set or aborted with, else from how it ended."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may hold the code as its number
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    if exc is None:
        return "OK"
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"


class RpcMeter(MethodWrapper):
    def __init__(self, metrics: RpcMetrics, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._metrics = metrics

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        observe = self._metrics.observe
        return around(handler, lambda context: _Timed(observe, method, context))


class _Timed:
    """Around one call: times it, and counts it by the status it ended with. A class, not
    @asynccontextmanager: this runs on every call, and a generator per call costs more."""

    __slots__ = ("_context", "_method", "_observe", "_start")

    def __init__(self, observe: Callable[[str, str, str, float], None], method: str, context: Context) -> None:
        self._observe = observe
        self._method = method
        self._context = context
        self._start = 0.0

    async def __aenter__(self) -> None:
        self._start = time.perf_counter()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._observe("grpc", self._method, _code(self._context, exc), time.perf_counter() - self._start)
