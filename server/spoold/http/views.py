"""How the REST routes show a job: its proto JSON (camelCase names, fields at their defaults left
out), with `jobId`, a `status` without the STATE_ prefix, and the payload and result as JSON values
when their content type is JSON (else base64, as proto JSON has them)."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from spool.v1 import job_pb2
from spoold.errors import InvalidArgument

JSON_TYPES = ("application/json", "")


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in JSON_TYPES or media.endswith("+json")


def status(job: job_pb2.Job) -> str:
    return job_pb2.Job.State.Name(job.state).removeprefix("STATE_")


def _value(raw: bytes, content_type: str, encoded: Any) -> Any:
    if not raw or not _is_json(content_type):
        return encoded
    try:
        return json.loads(raw)
    except ValueError:  # stored before results were checked: show it as it is
        return encoded


def job(message: job_pb2.Job) -> dict[str, Any]:
    fields = json_format.MessageToDict(message)
    fields.pop("id", None)
    fields.pop("state", None)
    out: dict[str, Any] = {"jobId": message.id, "status": status(message), **fields}
    if "payload" in out:
        out["payload"] = _value(message.payload, message.content_type, out["payload"])
    if "result" in out:
        out["result"] = _value(message.result, message.result_content_type, out["result"])
    return out


def payload_bytes(payload: Any, content_type: str) -> bytes:
    """A REST payload as the job stores it: any JSON value, serialized compactly; with a content
    type other than JSON, a string, stored as its UTF-8 bytes."""
    if payload is None:
        return b""
    if _is_json(content_type):
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(payload, str):
        text = payload
    else:
        raise InvalidArgument("payload", f"must be a string with content type {content_type[:60]!r}")
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # JSON may escape a lone surrogate, which no UTF-8 text holds
        raise InvalidArgument("payload", "holds a lone UTF-16 surrogate") from exc


def queue_segment(queue: str) -> str:
    """A queue named in a URL path. `.` and `..` are refused: HTTP clients and proxies rewrite them."""
    if queue in (".", ".."):
        raise InvalidArgument("queue", f"{queue!r} cannot name a queue in a URL")
    return queue
