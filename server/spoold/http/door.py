"""The HTTP door onto the service code: every method of every service, found by its gRPC path
(`/spool.v1.QueueService/Enqueue`), called with the same key check (auth/gate.py), the same
servicer objects and the same domain errors as through the gRPC port. Generic over the services'
descriptors: a method added to a service is reachable here with no change."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from spoold.api import counts
from spoold.api.errors import code_of, failure
from spoold.auth.gate import Gate
from spoold.auth.principal import current
from spoold.config import Limits
from spoold.errors import SpoolError
from spoold.http.calls import HttpCall
from spoold.logformat import note_call, subject
from spoold.metrics.rpc import RpcMetrics

if TYPE_CHECKING:  # imported only when tracing is on (it needs the optional packages)
    from opentelemetry.trace import Span

    from spoold.api.tracing import ServerSpans

Method = Callable[[Message, HttpCall], Any]


def paths(services: Mapping[ServiceDescriptor, object]) -> dict[str, Method]:
    """Each method's gRPC path, with the servicer's method that answers it."""
    return {
        f"/{service.full_name}/{m.name}": getattr(servicer, m.name)
        for service, servicer in services.items()
        for m in service.methods
    }


class Door:
    def __init__(
        self,
        gate: Gate,
        services: Mapping[ServiceDescriptor, object],
        limits: Limits,
        metrics: RpcMetrics | None = None,
        spans: ServerSpans | None = None,
    ) -> None:
        self._gate = gate
        self.limits = limits
        self.services = tuple(services)
        self._methods = paths(services)
        self._metrics = metrics
        self._spans = spans

    def _begin(self, path: str, call: HttpCall) -> Span | None:
        """The call's SERVER span, when tracing is on (api/tracing.py)."""
        return None if self._spans is None else self._spans.start(path, "http", call.headers)

    def _observe(
        self, path: str, start: float, error: SpoolError | None, span: Span | None, request: Message, answer: object
    ) -> None:
        """Counts and times the call, as the gRPC door's interceptors do (api/metering.py,
        api/tracing.py), and ends its span."""
        if self._metrics is not None:
            code = "OK" if error is None else code_of(error).name
            self._metrics.observe("http", path, code, time.perf_counter() - start)
        if span is not None and self._spans is not None:
            status = ("OK", 0) if error is None else (code_of(error).name, code_of(error).value[0])
            self._spans.end(span, status, subject(request), answer)

    async def _admit(self, path: str, request: Message, call: HttpCall) -> Method:
        """The method, once the key allows it and the request's repeated fields are within their caps."""
        current.set(await self._gate.admit(path, call.authorization))
        note_call(path, request, call.peer())
        counts.check(request, self.limits)
        return self._methods[path]

    async def unary(self, path: str, request: Message, call: HttpCall) -> Message:
        """The answer of a unary method; a refusal or failure raises a SpoolError."""
        start, error, span, answer = time.perf_counter(), None, self._begin(path, call), None
        try:
            method = await self._admit(path, request, call)
            result: Awaitable[Message] = method(request, call)
            answer = await result
            return answer
        except SpoolError as err:
            error = err
            raise
        except Exception as exc:
            error = failure(exc, path)
            raise error from exc
        finally:
            self._observe(path, start, error, span, request, answer)

    async def stream(self, path: str, request: Message, call: HttpCall) -> AsyncIterator[Message]:
        """The answers of a server-streaming method, as they come."""
        start, error, span = time.perf_counter(), None, self._begin(path, call)
        try:
            method = await self._admit(path, request, call)
            answers: AsyncIterator[Message] = method(request, call)
            async for answer in answers:
                yield answer
        except SpoolError as err:
            error = err
            raise
        except Exception as exc:
            error = failure(exc, path)
            raise error from exc
        finally:
            self._observe(path, start, error, span, request, None)
