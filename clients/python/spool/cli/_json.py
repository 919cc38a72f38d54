"""`-o json`: protobuf's JSON mapping, made for jq.

Every message is printed as protobuf's JSON mapping with the field names of the proto, and with
three changes, documented in docs/cli.md:
- every field is present, zero and false ones included (a message-typed field that is unset,
  such as a job's finished_at before it finishes, is left out);
- 64-bit integers are JSON numbers, not strings;
- a job's JSON payload, result and checkpoint are inlined as JSON values (other content types
  stay base64), and a job carries its derived `status` ("ready", "retrying", "dead", ...).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from spool._convert import JSON, job_status
from spool.v1 import job_pb2

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
# json.dumps escapes C0 controls itself; these it leaves raw, and a terminal may act on them.
_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _numbers(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    """64-bit integers as numbers, and the fields in the proto's order, following the message's descriptor."""
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        value = data.get(field.name)
        if value is None:
            continue
        if field.type in _INT64:
            value = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            # Well-known types (Timestamp, Duration) are strings already.
            if isinstance(value, list):
                value = [_numbers(field.message_type, v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                value = _numbers(field.message_type, value)
        out[field.name] = value
    return out


def _decoded(data: bytes, content_type: str) -> Any:
    """JSON bodies as JSON values; anything else as base64, as protobuf's JSON mapping has it."""
    if content_type.startswith(JSON) or not content_type:
        try:
            return json.loads(data)
        except ValueError:
            pass
    return base64.b64encode(data).decode()


def data(message: Message) -> dict[str, Any]:
    mapped = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    out = _numbers(message.DESCRIPTOR, mapped)
    if isinstance(message, job_pb2.Job):
        out["status"] = job_status(message)
        out["payload"] = _decoded(message.payload, message.content_type) if message.payload else None
        out["result"] = _decoded(message.result, message.result_content_type) if message.result else None
        out["checkpoint"] = _decoded(message.checkpoint, "") if message.checkpoint else None
    return out


def dumps(value: Message | Sequence[Message] | dict[str, Any], *, indent: int | None = 2) -> str:
    """A message, a list of them or a plain dict as JSON text that is safe to print on a terminal."""
    if isinstance(value, Message):
        doc: Any = data(value)
    elif isinstance(value, dict):
        doc = value
    else:
        doc = [data(m) for m in value]
    text = json.dumps(doc, ensure_ascii=False, indent=indent)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
