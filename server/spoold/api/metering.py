"""The gRPC door's RPC metrics: one interceptor, put first, that times every Spool method and
counts it by the status code it ended with (refusals by the key check included)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api.interceptors import Context, MethodWrapper, around, status_of
from spoold.metrics.rpc import RpcMetrics

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


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
        self._observe("grpc", self._method, status_of(self._context, exc).name, time.perf_counter() - self._start)
