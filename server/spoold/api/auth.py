"""The gRPC door's key check: one interceptor that runs the transport-neutral Gate before every
Spool method and makes its Principal the request's `current` caller, after taking the call's
request id. Health and reflection stay open."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import grpc

from spoold.api import calls
from spoold.api.errors import abort, failure, to_status
from spoold.api.interceptors import MethodWrapper, around
from spoold.auth.gate import Gate
from spoold.auth.principal import current

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]


def _headers(context: Context) -> tuple[list[str], str | None]:
    """The call's authorization values and its x-request-id, in one pass over its metadata."""
    authorization, rid = [], None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            authorization.append(value)
        elif key == calls.HEADER and isinstance(value, str):
            rid = value
    return authorization, rid


class AuthGuard(MethodWrapper):
    """Put first among the interceptors, so that a refused call is answered before anything else runs."""

    def __init__(self, gate: Gate, prefix: str = "/spool.") -> None:
        super().__init__(prefix)
        self._gate = gate

    async def _admit(self, method: str, context: Context) -> None:
        authorization, given = _headers(context)
        calls.begin(given)
        try:
            current.set(await self._gate.admit(method, authorization))
        except Exception as exc:
            await abort(context, to_status(failure(exc, f"checking the key of {method}")))

    def wrap(self, method: str, handler: Handler) -> Handler | None:
        return around(handler, lambda context: _Admitted(self, method, context))


class _Admitted:
    """Around one call: the key check before it (a class: a generator per call costs more)."""

    __slots__ = ("_context", "_guard", "_method")

    def __init__(self, guard: AuthGuard, method: str, context: Context) -> None:
        self._guard = guard
        self._method = method
        self._context = context

    async def __aenter__(self) -> None:
        await self._guard._admit(self._method, self._context)

    async def __aexit__(self, *exc: object) -> None:
        return None
