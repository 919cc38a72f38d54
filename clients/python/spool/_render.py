"""How the command line shows jobs and queues: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from spool._convert import JSON, state_name
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2

Job = job_pb2.Job
_OUTCOMES = {v: k.removeprefix("OUTCOME_") for k, v in job_pb2.Attempt.Outcome.items()}
_OUTCOMES[job_pb2.Attempt.OUTCOME_UNSPECIFIED] = "RUNNING"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def when(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(d: Duration) -> str:
    if not d.seconds and not d.nanos:
        return "-"
    return f"{d.ToTimedelta().total_seconds():.3f}s"


def clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _error(e: job_pb2.JobError) -> str:
    return f"{e.type}: {e.message}" if e.type or e.message else ""


def job_rows(jobs: Sequence[Job]) -> str:
    rows = [
        [
            j.id,
            j.queue,
            state_name(j.state),
            f"{j.attempt}/{j.max_attempts}",
            when(j.created_at),
            clip(_error(j.last_error)),
        ]
        for j in jobs
    ]
    return table(["ID", "QUEUE", "STATE", "ATTEMPT", "CREATED", "LAST ERROR"], rows)


def job_detail(job: Job) -> str:
    """The job's fields, then its attempts as a timeline."""
    fields = [
        ("id", job.id),
        ("queue", job.queue),
        ("state", state_name(job.state) + (" (cancel requested)" if job.cancel_requested else "")),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("priority", str(job.priority)),
        ("created", when(job.created_at)),
        ("run at", when(job.run_at)),
        ("finished", when(job.finished_at)),
        ("payload", clip(_blob(job.payload, job.content_type), 200)),
    ]
    if job.result:
        fields.append(("result", clip(_blob(job.result, job.result_content_type), 200)))
    if job.last_error.type or job.last_error.message:
        fields.append(("last error", clip(_error(job.last_error), 200)))
    width = max(len(k) for k, _ in fields)
    out = [f"{k.ljust(width)}  {v}" for k, v in fields]
    if job.attempts:
        out += ["", "attempts:", timeline(job)]
    return "\n".join(out)


def timeline(job: Job) -> str:
    rows = [
        [
            f"#{a.number}",
            when(a.started_at),
            seconds(a.duration),
            _OUTCOMES.get(a.outcome, str(a.outcome)),
            a.worker_id or "-",
            clip(_error(a.error)),
        ]
        for a in job.attempts
    ]
    return table(["", "STARTED", "TOOK", "OUTCOME", "WORKER", "ERROR"], rows)


def watch_line(job: Job) -> str:
    now = datetime.now(UTC).strftime("%H:%M:%S")
    extra = f"  {clip(_error(job.last_error))}" if job.last_error.type else ""
    return f"{now}  {job.id}  {state_name(job.state)}  attempt {job.attempt}/{job.max_attempts}{extra}"


def queue_rows(queues: Sequence[adm.Queue]) -> str:
    rows = []
    for q in queues:
        s = q.stats
        counts = (s.ready, s.scheduled, s.retrying, s.running, s.dead, s.succeeded, s.cancelled)
        rows.append([q.name, "yes" if q.paused else "no", *(str(c) for c in counts), seconds(s.lag)])
    headers = ["QUEUE", "PAUSED", "READY", "SCHEDULED", "RETRYING", "RUNNING", "DEAD", "SUCCEEDED", "CANCELLED", "LAG"]
    return table(headers, rows)


def _blob(data: bytes, content_type: str) -> str:
    if content_type.startswith(JSON) or not content_type:
        try:
            return json.dumps(json.loads(data), ensure_ascii=False)
        except ValueError:
            pass
    return f"<{len(data)} bytes {content_type}>"


def _decoded(data: bytes, content_type: str) -> Any:
    """JSON bodies as JSON values; anything else as base64, as protobuf's JSON mapping has it."""
    if content_type.startswith(JSON) or not content_type:
        try:
            return json.loads(data)
        except ValueError:
            pass
    return base64.b64encode(data).decode()


def as_dict(message: Message) -> dict[str, Any]:
    """Protobuf's JSON mapping (field names as in the proto), with JSON payloads and results inlined."""
    out = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if isinstance(message, Job):
        if message.payload:
            out["payload"] = _decoded(message.payload, message.content_type)
        if message.result:
            out["result"] = _decoded(message.result, message.result_content_type)
        if message.checkpoint:
            out["checkpoint"] = _decoded(message.checkpoint, "")
    return out


def as_json(value: Message | Sequence[Message]) -> str:
    data = as_dict(value) if isinstance(value, Message) else [as_dict(m) for m in value]
    return json.dumps(data, ensure_ascii=False, indent=2)
