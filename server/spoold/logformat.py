"""spoold's own log lines: text or JSON (--log-format, SPOOL_LOG_FORMAT), each carrying what is
known of the call it was logged in: request id, method, job id, queue, key id and peer.

The doors note the call once (`note_call`, from the gRPC key-check interceptor and the HTTP door),
reading the job id and queue from the request message's own fields when it has them; no service
method sets anything. A line logged outside a call (start-up, loops) carries none of them.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass

from google.protobuf.message import Message

from spoold.api import calls
from spoold.auth.principal import current

FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    peer: str
    job_id: str
    queue: str


_call: ContextVar[_Call | None] = ContextVar("spool_log_call", default=None)


def _field(request: Message, name: str) -> str:
    value = getattr(request, name, "")
    return value if isinstance(value, str) else ""


def subject(request: Message) -> tuple[str, str]:
    """The job id and queue(s) a request names in its own fields, "" where it names none."""
    job_id = _field(request, "job_id")
    queue = _field(request, "queue") or ",".join(getattr(request, "queues", ()) or ())
    return job_id[:40], queue[:200]


def note_call(method: str, request: Message, peer: str) -> None:
    """The call this context serves, for every line logged in it."""
    job_id, queue = subject(request)
    _call.set(_Call(method.rsplit("/", 1)[-1], peer, job_id, queue))


def noted_call() -> tuple[str, str] | None:
    """The job id and queue noted for the call this context serves; None before note_call."""
    call = _call.get()
    return None if call is None else (call.job_id, call.queue)


def call_fields() -> dict[str, str]:
    """What is known of the current call: empty outside one."""
    out: dict[str, str] = {}
    rid = calls.current_request_id()
    if rid:
        out["request_id"] = rid
    call = _call.get()
    if call is not None:
        out["method"] = call.method
        if call.job_id:
            out["job_id"] = call.job_id
        if call.queue:
            out["queue"] = call.queue
        if call.peer:
            out["peer"] = call.peer
    principal = current.get(None)
    if principal is not None and principal.key_id:
        out["key_id"] = principal.key_id
    return out


class TextFormatter(logging.Formatter):
    """The usual line, then the call's fields as key=value."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "call", None) or {}
        if not fields:
            return line
        head, sep, rest = line.partition("\n")  # after the message, before a traceback
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{head} [{extra}]{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the call's fields,
    and the exception's traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(getattr(record, "call", None) or {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class CallFilter(logging.Filter):
    """Adds the current call's fields to each record (as `record.call`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call = call_fields()
        return True


def configure(level: str, fmt: str) -> None:
    """spoold's logging: one handler on stderr in the chosen format."""
    if fmt not in FORMATS:
        raise ValueError(f"SPOOL_LOG_FORMAT/--log-format: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CallFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
