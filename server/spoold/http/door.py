"""The HTTP door onto the service code: every method of every service, found by its gRPC path
(`/spool.v1.QueueService/Enqueue`), called with the same key check (auth/gate.py), the same
servicer objects and the same domain errors as through the gRPC port. Generic over the services'
descriptors: a method added to a service is reachable here with no change."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from spoold.api import counts
from spoold.api.errors import code_of, failure
from spoold.auth.gate import Gate
from spoold.auth.principal import current
from spoold.config import Limits
from spoold.errors import SpoolError
from spoold.http.calls import HttpCall
from spoold.logformat import note_call
from spoold.metrics.rpc import RpcMetrics

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
    ) -> None:
        self._gate = gate
        self.limits = limits
        self.services = tuple(services)
        self._methods = paths(services)
        self._metrics = metrics

    def _observe(self, path: str, start: float, error: SpoolError | None) -> None:
        """Counts and times the call, as the gRPC door's interceptor does (api/metering.py)."""
        if self._metrics is not None:
            code = "OK" if error is None else code_of(error).name
            self._metrics.observe("http", path, code, time.perf_counter() - start)

    async def _admit(self, path: str, request: Message, call: HttpCall) -> Method:
        """The method, once the key allows it and the request's repeated fields are within their caps."""
        current.set(await self._gate.admit(path, call.authorization))
        note_call(path, request, call.peer())
        counts.check(request, self.limits)
        return self._methods[path]

    async def unary(self, path: str, request: Message, call: HttpCall) -> Message:
        """The answer of a unary method; a refusal or failure raises a SpoolError."""
        start, error = time.perf_counter(), None
        try:
            method = await self._admit(path, request, call)
            result: Awaitable[Message] = method(request, call)
            return await result
        except SpoolError as err:
            error = err
            raise
        except Exception as exc:
            error = failure(exc, path)
            raise error from exc
        finally:
            self._observe(path, start, error)

    async def stream(self, path: str, request: Message, call: HttpCall) -> AsyncIterator[Message]:
        """The answers of a server-streaming method, as they come."""
        start, error = time.perf_counter(), None
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
            self._observe(path, start, error)
