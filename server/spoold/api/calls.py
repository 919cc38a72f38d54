"""What service code may know of the call it serves, whichever door (gRPC, Connect, REST) it came
through. The door fills it in: the caller (auth/principal.py's `current`), the request id (here),
and the context object handed to each service method, which answers the three questions below.
grpc.aio's ServicerContext answers them as they are; the HTTP door passes its own (http/calls.py)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Protocol

HEADER = "x-request-id"
MAX_LENGTH = 100
# A caller's id goes into log lines as it is only if it cannot forge or break one: no line breaks
# (\n, \r, or NEL and U+2028 that some viewers split on), no escape sequences, no spaces to fake a
# field with. Anything else is replaced, not refused: a request id is a courtesy, never a reason to fail.
_SAFE = re.compile(r"[A-Za-z0-9._-]+")
_current: ContextVar[str | None] = ContextVar("spool_request_id", default=None)


class CallContext(Protocol):
    def peer(self) -> str:
        """Who is calling, as the transport sees it (e.g. ipv4:127.0.0.1:5555)."""
        ...

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline, or None without one."""
        ...

    def cancelled(self) -> bool:
        """True once the caller has gone or given up: an answer would not be read."""
        ...


def begin(given: str | None) -> str:
    """Makes the caller's x-request-id this call's id when it is safe to log; else a new one."""
    rid = given if given and len(given) <= MAX_LENGTH and _SAFE.fullmatch(given) else uuid.uuid4().hex
    _current.set(rid)
    return rid


def current_request_id() -> str | None:
    """This call's request id, None outside a call (for log lines: never makes one)."""
    return _current.get()


def request_id() -> str:
    """This call's request id; one is made if no door set it."""
    rid = _current.get()
    return rid if rid is not None else begin(None)
