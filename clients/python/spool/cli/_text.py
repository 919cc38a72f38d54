"""Text for people: server-supplied strings made safe for a terminal, times with their zone,
durations such as 1m03s."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

# What a terminal may act on rather than show: C0 and C1 controls (ESC starts every escape
# sequence; 0x9b is a one-byte CSI), DEL, and the bidirectional overrides that reorder what is
# shown. Tabs and newlines are handled apart, as whitespace.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, *, width: int | None = None) -> str:
    """One line: whitespace runs become one space, control characters are shown escaped
    (ESC as the four characters \\x1b), and the result is cut to `width` with an ellipsis."""
    text = _CONTROL.sub(_visible, " ".join(text.split()))
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def clean_block(text: str) -> str:
    """Several lines (a traceback): newlines and tabs kept, every other control character escaped."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(_CONTROL.sub(_visible, line.rstrip()) for line in lines).strip("\n")


def is_set(ts: Timestamp) -> bool:
    return bool(ts.seconds or ts.nanos)


def when(ts: Timestamp) -> str:
    """Local time with its zone ("2026-11-24 10:27:10 CET"; "... UTC" where the zone is UTC), "-" if unset."""
    if not is_set(ts):
        return "-"
    return ts.ToDatetime(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock(moment: datetime | None = None) -> str:
    """The time of day with its zone, for lines that follow a job as it changes."""
    return (moment or datetime.now(UTC)).astimezone().strftime("%H:%M:%S %Z")


def span(value: timedelta) -> str:
    """A duration as people read it: 250ms, 4.2s, 1m03s, 2h05m, 3d04h."""
    total = value.total_seconds()
    sign, total = ("-", -total) if total < 0 else ("", total)
    if total < 1:
        return f"{sign}{round(total * 1000)}ms"
    if total < 60:
        return f"{sign}{total:.1f}".removesuffix(".0") + "s"
    whole = int(total)
    if whole < 3600:
        return f"{sign}{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{sign}{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{sign}{whole // 86400}d{whole % 86400 // 3600:02d}h"


def took(d: Duration) -> str:
    """A Duration message as span() shows it, "-" if unset."""
    if not d.seconds and not d.nanos:
        return "-"
    return span(d.ToTimedelta())


def relative(ts: Timestamp, now: datetime | None = None) -> str:
    """ "in 9m59s" or "3m02s ago", for a time worth reading against now."""
    if not is_set(ts):
        return ""
    delta = ts.ToDatetime(tzinfo=UTC) - (now or datetime.now(UTC))
    return f"in {span(delta)}" if delta > timedelta(0) else f"{span(-delta)} ago"
