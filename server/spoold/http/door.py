"""The HTTP door onto the service code: every method of every service, found by its gRPC path
(`/spool.v1.QueueService/Enqueue`), called with the same key check (auth/gate.py), the same
servicer objects and the same domain errors as through the gRPC port. Generic over the services'
descriptors: a method added to a service is reachable here with no change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from spoold.api.errors import failure
from spoold.auth.gate import Gate
from spoold.auth.principal import current
from spoold.errors import SpoolError
from spoold.http.calls import HttpCall
from spoold.logformat import note_call

Method = Callable[[Message, HttpCall], Any]


def paths(services: Mapping[ServiceDescriptor, object]) -> dict[str, Method]:
    """Each method's gRPC path, with the servicer's method that answers it."""
    return {
        f"/{service.full_name}/{m.name}": getattr(servicer, m.name)
        for service, servicer in services.items()
        for m in service.methods
    }


class Door:
    def __init__(self, gate: Gate, services: Mapping[ServiceDescriptor, object]) -> None:
        self._gate = gate
        self.services = tuple(services)
        self._methods = paths(services)

    async def _admit(self, path: str, request: Message, call: HttpCall) -> Method:
        current.set(await self._gate.admit(path, call.authorization))
        note_call(path, request, call.peer())
        return self._methods[path]

    async def unary(self, path: str, request: Message, call: HttpCall) -> Message:
        """The answer of a unary method; a refusal or failure raises a SpoolError."""
        method = await self._admit(path, request, call)
        try:
            result: Awaitable[Message] = method(request, call)
            return await result
        except SpoolError:
            raise
        except Exception as exc:
            raise failure(exc, path) from exc

    async def stream(self, path: str, request: Message, call: HttpCall) -> AsyncIterator[Message]:
        """The answers of a server-streaming method, as they come."""
        method = await self._admit(path, request, call)
        try:
            answers: AsyncIterator[Message] = method(request, call)
            async for answer in answers:
                yield answer
        except SpoolError:
            raise
        except Exception as exc:
            raise failure(exc, path) from exc
