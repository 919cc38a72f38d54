"""Request validation: every field is checked here, before anything reaches the database."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from spoold.config import Limits
from spoold.errors import InvalidArgument, PayloadTooLarge

# Printable, no spaces or control characters: safe in logs, URLs and NOTIFY payloads.
_NAME = re.compile(r"[^\x00-\x20\x7f]+")
_MAX_ID = 2**63 - 1
# Protobuf's own range for Timestamp and Duration: beyond it conversion would overflow.
_TS_MIN, _TS_MAX = -62135596800, 253402300799
_DUR_MAX = 315576000000
_LIMITS = Limits()


_SURROGATE = re.compile("[\ud800-\udfff]")


def text(field: str, value: str, max_chars: int, *, required: bool = False) -> str:
    if required and not value:
        raise InvalidArgument(field, "required")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain a NUL character")
    if len(value) > max_chars:
        raise InvalidArgument(field, f"longer than {max_chars} characters")
    return value


def log_lines(value: str) -> str:
    """A worker's log lines, never refused: they are the record of what happened, so what the
    database cannot hold is replaced (NUL, and unpaired surrogates that JSON can carry) with U+FFFD.
    Their length is bounded where they are stored (Limits.max_attempt_log_chars)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value.replace("\x00", "\ufffd")


def name(field: str, value: str, limits: Limits) -> str:
    text(field, value, limits.max_name_length, required=True)
    if not _NAME.fullmatch(value):
        raise InvalidArgument(field, "must be printable characters without spaces")
    return value


def names(field: str, values: Iterable[str], limits: Limits) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(name(f"{field}[{i}]", v, limits) for i, v in enumerate(values)))
    if not found:
        raise InvalidArgument(field, "at least one is required")
    return found


def positive_id(field: str, value: str) -> int:
    """Job ids and lease tokens: decimal strings of positive 64-bit integers."""
    if not value:
        raise InvalidArgument(field, "required")
    if not value.isascii() or not value.isdigit() or len(value) > 19 or not 0 < int(value) <= _MAX_ID:
        raise InvalidArgument(field, f"malformed: {value[:40]!r}")
    return int(value)


def duration(field: str, d: Duration, maximum: timedelta, *, allow_zero: bool = False) -> timedelta:
    if abs(d.seconds) > _DUR_MAX or abs(d.nanos) >= 10**9 or (d.seconds * d.nanos < 0):
        raise InvalidArgument(field, "not a valid duration")
    value = d.ToTimedelta()
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        raise InvalidArgument(field, "must be positive" if not allow_zero else "must not be negative")
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}")
    return value


def timestamp(field: str, ts: Timestamp) -> datetime:
    if not _TS_MIN <= ts.seconds <= _TS_MAX or not 0 <= ts.nanos < 10**9:
        raise InvalidArgument(field, "not a valid timestamp")
    return ts.ToDatetime(tzinfo=UTC)


def in_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}")
    return value


def finite(field: str, value: float, low: float, high: float) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}")
    return value


def blob(field: str, value: bytes, limits: Limits) -> bytes:
    if len(value) > limits.max_payload_bytes:
        raise PayloadTooLarge(
            f"{field}: {len(value)} bytes is over the limit of {limits.max_payload_bytes}", field=field
        )
    return value


def json_document(field: str, value: bytes | str, lim: Limits = _LIMITS) -> str:
    """Valid JSON that PostgreSQL's jsonb can store, and print back within the limits, as text.
    Python's parser accepts more than jsonb does (NaN, Infinity, unpaired surrogates, \\u0000,
    numbers beyond numeric's range), and jsonb prints numbers in full: `1e131000`, 8 bytes, comes
    back as 131,001. So each number may have at most max_json_number_chars characters written out in
    full, and the document, with its numbers written out, at most max_payload_bytes."""
    numbers = _Numbers(lim.max_json_number_chars)
    try:
        raw = value.decode() if isinstance(value, bytes) else value
        parsed = json.loads(raw, parse_constant=_no_constant, parse_float=numbers.real, parse_int=numbers.integer)
    except _NumberTooLong as exc:
        raise InvalidArgument(field, str(exc)) from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(field, f"not valid JSON: {str(exc)[:120]}") from exc
    if numbers.growth:
        size = (len(value) if isinstance(value, bytes) else len(raw.encode())) + numbers.growth
        if size > lim.max_payload_bytes:
            raise PayloadTooLarge(
                f"{field}: {size} bytes with its numbers written out in full is over the limit of "
                f"{lim.max_payload_bytes}",
                field=field,
            )
    # Only a \\u0000 or \\ud800-\\udfff escape can put a NUL or an unpaired surrogate into UTF-8 text.
    if _SUSPECT_ESCAPE.search(raw):
        bad = _bad_text(parsed)
        if bad:
            raise InvalidArgument(field, f"JSON must not contain {bad}")
    return raw


_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


# PostgreSQL's numeric holds at most 131072 digits before the decimal point and 16383 after.
_NUMERIC_INT_DIGITS, _NUMERIC_SCALE = 131072, 16383


class _NumberTooLong(ValueError):
    pass


class _Numbers:
    """The parse hooks for one document: each number checked as it is read, and how many bytes the
    document grows by once jsonb writes its numbers out in full."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.growth = 0

    def integer(self, literal: str) -> str:
        # An integer is printed as written (or shorter: -0 as 0), so only its length matters.
        if len(literal) > self.max_chars:
            raise _NumberTooLong(f"a number is longer than {self.max_chars} characters: {_shown(literal)}")
        return literal

    def real(self, literal: str) -> str:
        chars = written_out(literal)
        if chars > self.max_chars:
            raise _NumberTooLong(
                f"a number is longer than {self.max_chars} characters written out in full: {_shown(literal)} "
                f"({chars} characters; PostgreSQL prints numbers without an exponent)"
            )
        self.growth += max(0, chars - len(literal))
        return literal


def _shown(literal: str) -> str:
    return literal if len(literal) <= 40 else literal[:40] + "..."


def written_out(literal: str) -> int:
    """How many characters PostgreSQL prints for this JSON number: numeric keeps its digits and
    scale and prints them without an exponent (1.5e3 as 1500, 1e-3 as 0.001, 1.50 as 1.50)."""
    sign, digits, exponent = Decimal(literal).as_tuple()
    assert isinstance(exponent, int)  # JSON has no NaN or Infinity literals
    scale = max(0, -exponent)
    if scale > _NUMERIC_SCALE or len(digits) + exponent > _NUMERIC_INT_DIGITS:
        raise ValueError(f"number out of range: {_shown(literal)}")
    zero = not any(digits)
    whole = 1 if zero else max(1, len(digits) + exponent)
    return (0 if zero else sign) + whole + (scale + 1 if scale else 0)


def _bad_text(value: object) -> str | None:
    """What jsonb refuses in a string or key: \\u0000 or an unpaired surrogate."""
    if isinstance(value, str):
        if "\x00" in value:
            return "\\u0000"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "an unpaired surrogate (\\ud800-\\udfff)"
        return None
    if isinstance(value, list):
        return next((bad for v in value if (bad := _bad_text(v))), None)
    if isinstance(value, dict):
        return next((bad for k, v in value.items() if (bad := _bad_text(k) or _bad_text(v))), None)
    return None


def headers(field: str, value: Mapping[str, str], limits: Limits) -> dict[str, str]:
    if len(value) > limits.max_headers:
        raise InvalidArgument(field, f"more than {limits.max_headers} headers")
    size = 0
    for k, v in value.items():
        text(f"{field}[{k[:40]!r}]", k, limits.max_name_length, required=True)
        text(f"{field}[{k[:40]!r}]", v, limits.max_header_bytes)
        size += len(k) + len(v)
    if size > limits.max_header_bytes:
        raise InvalidArgument(field, f"over {limits.max_header_bytes} characters in all")
    return dict(value)
