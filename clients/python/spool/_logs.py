"""A handler's log lines: captured per attempt, bounded, and sent with heartbeats and the outcome.

Lines come from `job.log(...)` and from Python `logging` records emitted while the handler runs
(the Worker sets CURRENT for the handler's task or thread). Each attempt buffers at most
MAX_PENDING_CHARS between sends, dropping its oldest lines first and saying so in a marker line;
a single line is cut at MAX_LINE_CHARS. Nothing here ever raises into the handler: a line that
cannot be sent as it is (NUL, unpaired surrogates) is cleaned.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections import deque
from typing import Protocol

# The server keeps the last 64 Ki characters per attempt; buffering more between sends is waste
# (a little less, so that a marker of dropped lines at the front is kept too).
MAX_PENDING_CHARS = 60 * 1024
MAX_LINE_CHARS = 16 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


class _HasLog(Protocol):
    logs: AttemptLog


CURRENT: contextvars.ContextVar[_HasLog | None] = contextvars.ContextVar("spool_job", default=None)


def clean(text: str) -> str:
    """Text that protobuf can encode and PostgreSQL can store."""
    try:
        text.encode()
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "\ufffd")


def format_line(level: str, message: str, when: float | None = None) -> str:
    if len(message) > MAX_LINE_CHARS:
        cut = len(message) - MAX_LINE_CHARS
        message = f"{message[:MAX_LINE_CHARS]}...[spool: line cut, {cut} more characters]"
    when = time.time() if when is None else when
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return clean(f"{stamp}.{int(when * 1000) % 1000:03d}Z {level} {message}\n")


class AttemptLog:
    """The lines an attempt wrote and has not sent yet; safe to write from any thread."""

    __slots__ = ("_dropped", "_dropped_chars", "_lines", "_lock", "_size")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: deque[str] = deque()
        self._size = 0
        self._dropped = 0
        self._dropped_chars = 0

    def write(self, level: str, message: str, when: float | None = None) -> None:
        self._add(format_line(level, message, when), front=False)

    def take(self) -> str:
        """Everything not sent yet (with a marker where lines were dropped); empties the buffer."""
        with self._lock:
            if not self._lines:
                return ""
            marker = ""
            if self._dropped:
                marker = f"[spool: {self._dropped} log lines ({self._dropped_chars} characters) dropped here]\n"
            text = marker + "".join(self._lines)
            self._lines.clear()
            self._size = self._dropped = self._dropped_chars = 0
            return text

    def put_back(self, text: str) -> None:
        """Lines a failed send took: sent again with the next one (still within the bound)."""
        if text:
            self._add(text, front=True)

    def _add(self, text: str, *, front: bool) -> None:
        with self._lock:
            if front:
                self._lines.appendleft(text)
            else:
                self._lines.append(text)
            self._size += len(text)
            while self._size > MAX_PENDING_CHARS and len(self._lines) > 1:
                old = self._lines.popleft()
                self._size -= len(old)
                self._dropped += old.count("\n") or 1
                self._dropped_chars += len(old)


class CaptureHandler(logging.Handler):
    """Copies the records logged within a handler's context into its attempt's log."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        job = CURRENT.get()
        if job is None or record.name == "spool.worker":
            return
        try:
            job.logs.write(record.levelname, self.format(record), record.created)
        except Exception:  # a record that cannot be formatted: logging's own policy
            self.handleError(record)


_installed = 0
_handler = CaptureHandler()
_install_lock = threading.Lock()


def install() -> None:
    """Attaches the capture handler to the root logger (once, however many Workers run)."""
    global _installed
    with _install_lock:
        if _installed == 0:
            logging.getLogger().addHandler(_handler)
        _installed += 1


def uninstall() -> None:
    global _installed
    with _install_lock:
        _installed -= 1
        if _installed == 0:
            logging.getLogger().removeHandler(_handler)
