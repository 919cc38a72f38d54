"""Faults injected into a real spoold, as a server interceptor: a call fails with a status code before
the servicer runs (the request never landed) or after it (it landed; its answer is lost), and Lease
answers can carry timestamps shifted as by a server clock that is off.

    FaultInjector.parse("AckBatch:after:INTERNAL,Ack:before:UNAVAILABLE")

fails the first AckBatch after it ran, then the first Ack before it runs. Each fault is used once,
in order per method. A server stream (WatchCancels) can fail before it starts. Used in-process
by the Python tests and by tests/e2e/faulty_spoold.py for Node.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc

from spool.v1 import queue_service_pb2 as qs
from spoold.api.interceptors import MethodWrapper

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Fault:
    method: str  # e.g. "AckBatch"
    after: bool  # fail once the servicer has run (its effects stay)
    code: grpc.StatusCode


class FaultInjector(MethodWrapper):
    """Fails planned calls and records every call's method name (in `calls`) and outcome."""

    def __init__(self, faults: list[Fault] = [], skew: timedelta = timedelta(0)) -> None:  # noqa: B006
        super().__init__("/spool.v1.QueueService/")
        self.plan: dict[str, deque[Fault]] = defaultdict(deque)
        for fault in faults:
            self.plan[fault.method].append(fault)
        self.skew = skew
        self.calls: list[str] = []
        self.injected: list[Fault] = []

    @classmethod
    def parse(cls, spec: str, skew: timedelta = timedelta(0)) -> FaultInjector:
        faults = []
        for part in filter(None, spec.split(",")):
            method, when, code = part.split(":")
            faults.append(Fault(method, when == "after", grpc.StatusCode[code]))
        return cls(faults, skew)

    def add(self, method: str, code: grpc.StatusCode, *, after: bool = False) -> None:
        self.plan[method].append(Fault(method, after, code))

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        name = method.rsplit("/", 1)[1]
        if handler.unary_stream is not None:
            return self._wrap_stream(name, handler)
        if handler.unary_unary is None:
            return None
        inner: Any = handler.unary_unary

        async def behavior(request: Any, context: Context) -> Any:
            self.calls.append(name)
            fault = self.plan[name].popleft() if self.plan[name] else None
            if fault is not None and not fault.after:
                self.injected.append(fault)
                await context.abort(fault.code, f"injected before {name}")
            response = await inner(request, context)
            if fault is not None:
                self.injected.append(fault)
                await context.abort(fault.code, f"injected after {name}")
            return self._skewed(response)

        return grpc.unary_unary_rpc_method_handler(behavior, handler.request_deserializer, handler.response_serializer)

    def _wrap_stream(self, name: str, handler: Handler) -> Handler:
        """A server stream fails before it starts (e.g. UNIMPLEMENTED, as from an older server)."""
        inner: Any = handler.unary_stream

        async def behavior(request: Any, context: Context) -> AsyncIterator[Any]:
            self.calls.append(name)
            fault = self.plan[name].popleft() if self.plan[name] else None
            if fault is not None:
                self.injected.append(fault)
                await context.abort(fault.code, f"injected before {name}")
            async for response in inner(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(behavior, handler.request_deserializer, handler.response_serializer)

    def _skewed(self, response: Any) -> Any:
        """Lease answers as a server whose clock is `skew` ahead of the worker's would send them."""
        if not self.skew or not isinstance(response, qs.LeaseResponse | qs.AckBatchResponse):
            return response
        for leased in response.jobs if isinstance(response, qs.LeaseResponse) else response.next:
            for ts in (leased.lease_expires_at, leased.job.lease_expires_at):
                if ts.seconds:
                    ts.FromDatetime(ts.ToDatetime() + self.skew)
        return response
