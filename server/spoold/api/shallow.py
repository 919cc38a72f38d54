"""A large request's repeated fields counted before it is decoded. Decoding builds every map entry
and repeated item first, and only then can counts.check look at their number: 9 MiB of tiny
EnqueueBatch headers (900,000 map entries in one job) held the event loop for about 0.6 s in
FromString alone. So a request over SMALL_REQUEST_BYTES is first parsed against a shallow copy of
its type, made once per type: only the fields that are, or lead to, repeated ones, each repeated
leaf (map entries, strings, messages) kept as raw bytes, never decoded, and everything else left
unknown. Its counts are held to counts.py's caps under the original fields' names, so a request
past a cap is refused as it would have been, at about a tenth of the cost, before the full decode.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from spoold.api import counts
from spoold.config import Limits

_F = descriptor_pb2.FieldDescriptorProto
# Repeated scalars keep their wire type (varints packed or not, fixed 32 and 64 bits); the rest are
# length-delimited, read as bytes.
_VARINT = {
    _F.TYPE_INT32,
    _F.TYPE_INT64,
    _F.TYPE_UINT32,
    _F.TYPE_UINT64,
    _F.TYPE_SINT32,
    _F.TYPE_SINT64,
    _F.TYPE_BOOL,
    _F.TYPE_ENUM,
}
_FIXED32 = {_F.TYPE_FIXED32, _F.TYPE_SFIXED32, _F.TYPE_FLOAT}
_FIXED64 = {_F.TYPE_FIXED64, _F.TYPE_SFIXED64, _F.TYPE_DOUBLE}


def check(request_type: type[Message], raw: bytes, lim: Limits) -> None:
    """Refuses `raw` (a serialized request_type) if a repeated field holds more entries than its
    cap; otherwise nothing. A request that does not parse is left to the full decode to refuse."""
    d = cast(Descriptor, request_type.DESCRIPTOR)
    try:
        parsed = _shallow(d).FromString(raw)
    except Exception:  # malformed: the full decode answers it as it always has
        return
    _walk(parsed, d, lim, "")


def _walk(msg: Any, d: Descriptor, lim: Limits, prefix: str) -> None:
    for field, into in counts._paths(d):
        value = getattr(msg, field.name)
        path = prefix + field.name
        if field.is_repeated:
            counts._check_count(field, path, len(value), lim)
            if into:
                for i, item in enumerate(value):
                    _walk(item, cast(Descriptor, field.message_type), lim, f"{path}[{i}].")
        elif msg.HasField(field.name):
            _walk(value, cast(Descriptor, field.message_type), lim, path + ".")


@cache
def _shallow(d: Descriptor) -> Any:
    """The shallow message class for `d`, with those of every type it leads to, in a pool of its own."""
    file = descriptor_pb2.FileDescriptorProto(name=f"spoold_shallow/{d.full_name}.proto", package="spoold_shallow")
    file.syntax = "proto3"
    todo, done = [d], set()
    while todo:
        t = todo.pop()
        if t.full_name in done:
            continue
        done.add(t.full_name)
        shallow = file.message_type.add(name=_name(t))
        for field, into in counts._paths(t):
            added = shallow.field.add(name=field.name, number=field.number)
            added.label = _F.LABEL_REPEATED if field.is_repeated else _F.LABEL_OPTIONAL
            if into:
                inner = cast(Descriptor, field.message_type)
                added.type, added.type_name = _F.TYPE_MESSAGE, f".spoold_shallow.{_name(inner)}"
                todo.append(inner)
            else:
                added.type = _leaf_type(field)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"spoold_shallow.{_name(d)}"))


def _name(d: Descriptor) -> str:
    return d.full_name.replace(".", "_")


def _leaf_type(field: FieldDescriptor) -> Any:
    kind = field.type
    if kind in _VARINT:
        return _F.TYPE_UINT64
    if kind in _FIXED32:
        return _F.TYPE_FIXED32
    if kind in _FIXED64:
        return _F.TYPE_FIXED64
    return _F.TYPE_BYTES
