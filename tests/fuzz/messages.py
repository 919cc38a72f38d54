"""Hypothesis strategies for any request message, built from its descriptor: every field, set or
not, drawn from edge cases (NUL bytes, invalid UTF-8 where bytes are allowed, int32 and int64
extremes, timestamps at years 1 and 9999, unknown enum values, huge repeated fields, garbage ids,
lease and page tokens) as well as from ordinary values, so that some requests are valid and reach
the database. A field added to the API is fuzzed without a change here."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MIB = 1024 * 1024
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
YEAR_1, YEAR_9999 = -62135596800, 253402300799
# The most bytes a "huge" repeated field may hold in all, so that a run stays within memory.
HUGE_BYTES = 12 * MIB

EDGE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n",
    "\u202e",
    "\uffff",
    "\U0001f600",
    "default",
    "x" * 129,
    "x" * 300,
    "k" * 10_000,
    "%_\\",
    "'; DROP TABLE spool.jobs; --",
]
EDGE_IDS = [
    "",
    "0",
    "-1",
    "1.5",
    " 1",
    "1\x00",
    "+7",
    "0x10",
    "\uff11",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
]
EDGE_BYTES = [
    b"",
    b"{}",
    b"null",
    b"[]",
    b"NaN",
    b"Infinity",
    b"{oops",
    b'{"a": "\\u0000"}',
    b'"\\ud800"',
    b"\xff\xfe",
    b'"\xed\xa0\x80"',
    b"\x00" * 16,
    b"1e1000000",
    b"[" * 5000 + b"]" * 5000,
    b'"' + b"x" * MIB + b'"',  # valid JSON over the payload limit
    b"x" * MIB,  # exactly at the limit
]
CONTENT_TYPES = ["", "application/json", "application/problem+json", "text/plain", "application/octet-stream", "a\x00"]
MASK_PATHS = [
    "max_attempts",
    "backoff",
    "backoff.kind",
    "backoff.initial_interval",
    "backoff.multiplier",
    "lease_duration",
    "attempt_timeout",
    "retention_dead",
    "nope",
    "",
]


def int_values(low: int, high: int, edges: Sequence[int] = ()) -> st.SearchStrategy[int]:
    specials = [v for v in (low, high, 0, 1, -1, *edges) if low <= v <= high]
    return st.one_of(st.sampled_from(specials), st.integers(-1005, 1005).filter(lambda v: low <= v <= high))


def timestamps(now: int) -> st.SearchStrategy[dict[str, int]]:
    seconds = st.one_of(
        st.sampled_from([YEAR_1, YEAR_1 + 1, YEAR_9999, YEAR_9999 + 1, YEAR_1 - 1, 0, now, now - 86400, now + 3600]),
        st.integers(now - 10**6, now + 10**6),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.sampled_from([0, 999, 1000, 999_999_999, 10**9, -1]), st.integers(*INT32))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


def durations() -> st.SearchStrategy[dict[str, int]]:
    seconds = st.one_of(
        st.sampled_from([0, 1, 30, 3600, 86400, 31 * 86400, 315576000000, 315576000001, -1]),
        st.integers(-10, 10**6),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.sampled_from([0, 1, 999, 1000, 500_000_000, 10**9, -1]), st.integers(*INT32))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


def json_bytes() -> st.SearchStrategy[bytes]:
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=10,
    )
    return values.map(lambda v: json.dumps(v).encode())


class Requests:
    """Strategies for request messages, with ids, tokens and names of the fuzzed database's jobs."""

    def __init__(self, ids: Sequence[str], names: Sequence[str], page_tokens: Sequence[str], now: int) -> None:
        self._ids = st.one_of(st.sampled_from(list(ids)), st.sampled_from(EDGE_IDS), st.text(max_size=20))
        self._names = st.one_of(st.sampled_from(list(names)), st.sampled_from(EDGE_TEXT), st.text(max_size=40))
        self._tokens = st.one_of(
            st.sampled_from(list(page_tokens) or [""]), st.sampled_from(EDGE_IDS), st.text(max_size=60)
        )
        self._now = now
        self._by_name: dict[str, st.SearchStrategy[Any]] = {
            "job_id": self._ids,
            "lease_token": self._ids,
            "job_ids": self._ids,
            "queue": self._names,
            "queues": self._names,
            "name": self._names,
            "page_token": self._tokens,
            "content_type": st.sampled_from(CONTENT_TYPES) | st.text(max_size=300),
            "result_content_type": st.sampled_from(CONTENT_TYPES),
            "payload_contains": json_bytes().map(bytes.decode) | st.sampled_from(EDGE_TEXT),
        }

    def around(self, base: Message) -> st.SearchStrategy[Message]:
        """Mostly `base` (a valid request) with up to three fields changed or cleared, so that the
        database is reached and each edge is met one at a time; sometimes a request drawn whole."""
        return self._mutated(base) | self.of(base.DESCRIPTOR)

    def _mutated(self, base: Message, depth: int = 0) -> st.SearchStrategy[Message]:
        fields = list(base.DESCRIPTOR.fields)
        if not fields:
            return st.just(base)

        @st.composite
        def mutated(draw: st.DrawFn) -> Message:
            msg = type(base)()
            msg.CopyFrom(base)
            for _ in range(draw(st.integers(0, 3))):
                f = draw(st.sampled_from(fields))
                value = draw(st.none() | self._field(f, depth) | self._inside(base, f, depth))
                msg.ClearField(f.name)
                if value is not None:
                    _set(msg, f, value)
            return msg

        return mutated()

    def _inside(self, base: Message, f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        """A change inside a message field of the base (one job of a batch, the lease of an Ack)."""
        if f.message_type is None or f.message_type.GetOptions().map_entry or depth >= 3:
            return st.nothing()
        if f.is_repeated:
            items = getattr(base, f.name)
            return st.lists(self._mutated(items[0], depth + 1), min_size=1, max_size=3) if items else st.nothing()
        return self._mutated(getattr(base, f.name), depth + 1) if base.HasField(f.name) else st.nothing()

    def of(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(descriptor)
        if descriptor.full_name == "google.protobuf.Timestamp":
            return timestamps(self._now).map(lambda kw: cls(**kw))
        if descriptor.full_name == "google.protobuf.Duration":
            return durations().map(lambda kw: cls(**kw))
        if descriptor.full_name == "google.protobuf.FieldMask":
            return st.lists(st.sampled_from(MASK_PATHS) | st.text(max_size=30), max_size=4).map(lambda p: cls(paths=p))
        fields = {f.name: st.none() | self._field(f, depth) for f in descriptor.fields}
        return st.fixed_dictionaries(fields).map(lambda values: _build(cls, descriptor, values))

    def _field(self, f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key, value = (self._value(x, depth) for x in f.message_type.fields)
            few = st.dictionaries(key, value, max_size=4)
            many = st.integers(60, 70).map(lambda n: {f"h{i}": "v" for i in range(n)})
            return few | many
        one = self._value(f, depth)
        if not f.is_repeated:
            return one
        return st.lists(one, max_size=4) | st.tuples(one, st.sampled_from([1000, 1001, 5000])).map(_huge)

    def _value(self, f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if f.name in self._by_name:
            return self._by_name[f.name]
        if f.message_type is not None:
            return self.of(f.message_type, depth + 1) if depth < 3 else st.just(None)
        if f.enum_type is not None:
            known = [v.number for v in f.enum_type.values]
            return st.sampled_from(known) | st.integers(*INT32)
        return _SCALARS[f.type]()


def _huge(drawn: tuple[Any, int]) -> list[Any]:
    item, n = drawn
    size = item.ByteSize() if isinstance(item, Message) else len(item) if isinstance(item, (str, bytes)) else 8
    return [item] * min(n, max(2, HUGE_BYTES // max(size, 1)))


_SCALARS: dict[int, Callable[[], st.SearchStrategy[Any]]] = {
    FieldDescriptor.TYPE_STRING: lambda: st.sampled_from(EDGE_TEXT) | st.text(max_size=40),
    FieldDescriptor.TYPE_BYTES: lambda: st.sampled_from(EDGE_BYTES) | json_bytes() | st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans,
    FieldDescriptor.TYPE_INT32: lambda: int_values(*INT32, edges=(100, 101, 1000, 1001, 32767, 32768, -32769)),
    FieldDescriptor.TYPE_SINT32: lambda: int_values(*INT32),
    FieldDescriptor.TYPE_UINT32: lambda: int_values(0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: lambda: int_values(*INT64),
    FieldDescriptor.TYPE_SINT64: lambda: int_values(*INT64),
    FieldDescriptor.TYPE_UINT64: lambda: int_values(0, 2**64 - 1),
    FieldDescriptor.TYPE_DOUBLE: lambda: st.floats() | st.sampled_from([0.0, 0.5, 1.0, 2.0, 100.0, 1e300]),
    FieldDescriptor.TYPE_FLOAT: lambda: st.floats(width=32),
}


def _build(cls: type[Message], descriptor: Descriptor, values: dict[str, Any]) -> Message:
    msg = cls()
    for name, value in values.items():
        if value is not None:
            _set(msg, descriptor.fields_by_name[name], value)
    return msg


def _set(msg: Message, f: FieldDescriptor, value: Any) -> None:
    target = getattr(msg, f.name)
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        target.update(value)
    elif f.is_repeated:
        target.extend(value)
    elif f.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(msg, f.name, value)


def garbage_bodies(valid: st.SearchStrategy[Message]) -> st.SearchStrategy[bytes]:
    """Request bodies that are not what a well-behaved client sends: random bytes, a valid message
    cut short, and a valid message with a string field holding invalid UTF-8 (as protobuf.js and
    hand-rolled clients can send)."""
    cut = st.tuples(valid.map(lambda m: m.SerializeToString()), st.integers(0, 64)).map(lambda t: t[0][: -t[1] or None])
    bad_utf8 = st.tuples(valid.map(lambda m: m.SerializeToString()), st.integers(1, 15), _invalid_utf8()).map(
        lambda t: t[0] + _field(t[1], t[2])
    )
    return st.binary(max_size=300) | cut | bad_utf8


def _invalid_utf8() -> st.SearchStrategy[bytes]:
    return st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"a\xf0\x9f\x98", b"\x80abc"])


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field on the wire: what a string field looks like."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
