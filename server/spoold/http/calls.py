"""The HTTP door's call context (api/calls.py's CallContext), made by the front middleware for each
request and reached by the Connect adapter and the REST routes through `current()`."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class HttpCall:
    client: str
    authorization: list[str]
    deadline: float | None = None  # on the event loop's clock
    gone: bool = False  # set when the server reports the client's disconnect
    # The request's headers as the ASGI server gave them (read only by tracing, for traceparent).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop, repr=False)

    def peer(self) -> str:
        return self.client

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self._loop.time())

    def cancelled(self) -> bool:
        return self.gone

    def set_timeout(self, seconds: float | None) -> None:
        """The caller's own deadline (Connect's connect-timeout-ms), from now."""
        self.deadline = None if seconds is None else self._loop.time() + seconds


_current: ContextVar[HttpCall] = ContextVar("spool_http_call")


def begin(call: HttpCall) -> None:
    _current.set(call)


def current() -> HttpCall:
    """The request's call; LookupError outside a request that came through the front middleware."""
    return _current.get()
