"""How jobs and queues look to people: rich tables and key/value grids. Every string that came
from the server goes through _text.clean (or clean_block) and into a Text, never into markup."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from spool._convert import JSON, job_status
from spool.cli._text import clean, clean_block, clock, relative, took, when
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2

Job = job_pb2.Job
Attempt = job_pb2.Attempt
_OUTCOMES = {v: k.removeprefix("OUTCOME_").lower() for k, v in Attempt.Outcome.items()}
_OUTCOMES[Attempt.OUTCOME_UNSPECIFIED] = "running"
STYLES = {
    "ready": "cyan",
    "throttled": "yellow",
    "scheduled": "blue",
    "retrying": "yellow",
    "running": "magenta",
    "succeeded": "green",
    "dead": "bold red",
    "cancelled": "dim",
    "waiting": "blue",
    "failed": "red",
    "lease_expired": "red",
    "timed_out": "red",
    "released": "dim",
}


def cell(text: str, style: str = "", width: int | None = 60) -> Text:
    return Text(clean(text, width=width), style=style)


def _table(*headers: str, right: Iterable[str] = ()) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in headers:
        table.add_column(h, justify="right" if h in right else "left", no_wrap=True, overflow="ellipsis")
    return table


def _status(name: str) -> Text:
    return Text(name, style=STYLES.get(name, ""))


def error_text(e: job_pb2.JobError) -> str:
    return f"{e.type}: {e.message}" if e.type and e.message else e.type or e.message


def blob(data: bytes, content_type: str) -> str:
    """A payload or result for a one-line view: compact JSON, or its size and type."""
    if content_type.startswith(JSON) or not content_type:
        try:
            return json.dumps(json.loads(data), ensure_ascii=False, separators=(", ", ": "))
        except ValueError:
            pass
    return f"<{len(data)} bytes {content_type or 'application/octet-stream'}>"


def job_rows(jobs: Sequence[Job]) -> Table:
    table = _table("ID", "QUEUE", "STATUS", "ATTEMPT", "CREATED", "LAST ERROR")
    for j in jobs:
        table.add_row(
            j.id,
            cell(j.queue, width=40),
            _status(job_status(j)),
            f"{j.attempt}/{j.max_attempts}",
            when(j.created_at),
            cell(error_text(j.last_error), "red"),
        )
    return table


def _grid(rows: Iterable[tuple[str, Text | str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def _state_line(job: Job) -> Text:
    status = job_status(job)
    text = _status(status)
    if status == "scheduled" or status == "retrying":
        text.append(f"  (due {relative(job.run_at)})", style="dim")
    if job.cancel_requested and job.state == Job.STATE_RUNNING:
        text.append("  cancel requested", style="yellow")
    return text


def _summary(job: Job) -> list[tuple[str, Text | str]]:
    rows: list[tuple[str, Text | str]] = [
        ("id", job.id),
        ("queue", cell(job.queue, width=None)),
        ("status", _state_line(job)),
        *([("pipeline", cell(f"{job.pipeline_id}, step {job.step_name}", width=None))] if job.pipeline_id else []),
        ("attempt", f"{job.attempt} of {job.max_attempts}" + (f", requeued {job.requeues}x" if job.requeues else "")),
        ("priority", str(job.priority)),
        ("created", when(job.created_at)),
        ("run at", when(job.run_at)),
    ]
    if job.state == Job.STATE_RUNNING:
        rows += [("worker", cell(job.worker_id, width=None)), ("lease ends", when(job.lease_expires_at))]
    rows.append(("finished", when(job.finished_at)))
    rows.append(("payload", cell(blob(job.payload, job.content_type), width=200)))
    if job.result:
        rows.append(("result", cell(blob(job.result, job.result_content_type), width=200)))
    if job.HasField("last_error"):
        rows.append(("last error", cell(error_text(job.last_error), "red", width=200)))
    return rows


def _details(job: Job) -> list[tuple[str, Text | str]]:
    """What --verbose adds: settings, keys, headers, the checkpoint."""
    b = job.backoff
    kind = job_pb2.BackoffPolicy.Kind.Name(b.kind).removeprefix("KIND_").lower()
    rows: list[tuple[str, Text | str]] = [
        ("content type", cell(job.content_type, width=None)),
        (
            "backoff",
            f"{kind} from {took(b.initial_interval)} to {took(b.max_interval)}"
            + (f", x{b.multiplier:g}" if kind == "exponential" else "")
            + (", jitter" if b.jitter else ""),
        ),
        ("lease", took(job.lease_duration)),
        ("attempt timeout", took(job.attempt_timeout) if job.HasField("attempt_timeout") else "none"),
        ("updated", when(job.updated_at)),
    ]
    if job.state == Job.STATE_RUNNING and job.HasField("attempt_deadline"):
        rows.append(("attempt deadline", when(job.attempt_deadline)))
    for label, value in (("idempotency key", job.idempotency_key), ("concurrency key", job.concurrency_key)):
        if value:
            rows.append((label, cell(value, width=None)))
    if job.concurrency_key:
        rows.append(("concurrency limit", str(job.concurrency_limit)))
    if job.rate_limit_key:
        rows.append(("rate limit key", cell(job.rate_limit_key, width=None)))
        rows.append(("rate limit", rate_text(job.rate_limit)))
    for key, value in sorted(job.headers.items()):
        rows.append((f"header {clean(key, width=60)}", cell(value, width=None)))
    checkpoint = blob(job.checkpoint, "") if job.checkpoint else "none"
    rows.append(("checkpoint", cell(checkpoint, width=None)))
    return rows


def job_detail(job: Job, verbose: bool = False, logs: bool = False) -> RenderableType:
    """The job's fields, then its attempts as a timeline; --verbose adds settings, the checkpoint and
    tracebacks, --logs each attempt's log lines."""
    parts: list[RenderableType] = [_grid(_summary(job) + (_details(job) if verbose else []))]
    if verbose and job.last_error.details:
        parts += [Text(""), Text("last error details:", style="bold"), Text(clean_block(job.last_error.details))]
    steps = durable_steps(job)
    if steps:
        parts += [Text(""), Text("steps:", style="bold"), _steps_table(steps)]
    if job.attempts:
        parts += [Text(""), Text("attempts:", style="bold"), timeline(job)]
    if verbose:
        parts += _attempt_details(job)
    if logs:
        parts += attempt_logs(job)
    return Group(*parts)


def attempt_logs(job: Job, number: int | None = None) -> list[RenderableType]:
    """Each attempt's log lines under a heading (or only attempt `number`'s)."""
    parts: list[RenderableType] = []
    for a in job.attempts:
        if number is None or a.number == number:
            outcome = _OUTCOMES.get(a.outcome, str(a.outcome))
            head = f"attempt #{a.number} (lease {a.lease_token}, {outcome}) log:"
            body = Text(clean_block(a.logs.rstrip("\n"))) if a.logs else Text("(no log lines)", style="dim")
            parts += [Text(""), Text(head, style="bold"), body]
    return parts


def durable_steps(job: Job) -> dict[str, Any]:
    """The durable steps (job.step) the job completed, from its checkpoint; {} if none."""
    if not job.checkpoint:
        return {}
    try:
        value = json.loads(job.checkpoint)
    except ValueError:
        return {}
    steps = value.get("spool.steps") if isinstance(value, dict) else None
    return steps if isinstance(steps, dict) else {}


def _steps_table(steps: dict[str, Any]) -> Table:
    table = _table("STEP", "RESULT")
    for name, result in steps.items():
        table.add_row(cell(name, "green", width=40), cell(json.dumps(result)))
    return table


def timeline(job: Job) -> Table:
    """One row per attempt, oldest first; a requeue shows as a row of its own where numbering restarts."""
    table = _table("", "STARTED", "TOOK", "OUTCOME", "WORKER", "ERROR")
    generation = job.attempts[0].requeues if job.attempts else 0
    for a in job.attempts:
        if a.requeues != generation:
            table.add_row(Text("requeued", style="bold yellow"), "", "", "", "", "")
            generation = a.requeues
        outcome = _OUTCOMES.get(a.outcome, str(a.outcome))
        table.add_row(
            f"#{a.number}",
            when(a.started_at),
            took(a.duration),
            _status(outcome),
            cell(a.worker_id or "-", width=40),
            cell(error_text(a.error), "red"),
        )
    return table


def _attempt_details(job: Job) -> list[RenderableType]:
    parts: list[RenderableType] = []
    for a in job.attempts:
        if a.error.details:
            head = f"attempt #{a.number} (lease {a.lease_token}) error details:"
            parts += [Text(""), Text(head, style="bold"), Text(clean_block(a.error.details))]
    return parts


def watch_line(job: Job) -> Text:
    line = Text(f"{clock()}  {job.id}  ")
    line.append_text(_status(job_status(job)))
    line.append(f"  attempt {job.attempt}/{job.max_attempts}")
    if job.cancel_requested and job.state == Job.STATE_RUNNING:
        line.append("  cancel requested", style="yellow")
    if job.HasField("last_error"):
        line.append("  ")
        line.append_text(cell(error_text(job.last_error), "red"))
    return line


def job_line(job: Job, verb: str) -> Text:
    """ "42  cancelled", "43  cancel requested ..." or "44  requeued": one line per job a command changed."""
    line = Text(f"{job.id}  ")
    if job.state == Job.STATE_RUNNING and job.cancel_requested:
        line.append("cancel requested", style="yellow")
        line.append(" (running: its worker hears it at once, or at its next heartbeat)", style="dim")
    else:
        line.append(verb, style=STYLES.get(verb, ""))
        status = job_status(job)
        if status != verb:
            line.append(f" ({status})", style="dim")
    return line


_COUNTS = ("ready", "throttled", "scheduled", "retrying", "running", "dead", "succeeded", "cancelled")


def rate_text(r: job_pb2.RateLimit) -> str:
    """ "10 per 1s, bursts of 5" for a rate limit."""
    burst = f", bursts of {r.burst}" if r.burst > 1 else ""
    return f"{r.limit} per {took(r.interval)}{burst}"


def queue_rows(queues: Sequence[adm.Queue]) -> Table:
    headers = ["QUEUE", "PAUSED", *(c.upper() for c in _COUNTS), "LAG", "DONE/MIN", "RATE LIMIT"]
    table = _table(*headers, right=[*(c.upper() for c in _COUNTS), "LAG", "DONE/MIN"])
    for q in queues:
        s = q.stats
        counts = [Text(str(getattr(s, c)), style=STYLES[c] if getattr(s, c) else "dim") for c in _COUNTS]
        paused = Text("paused", style="yellow") if q.paused else Text("no", style="dim")
        lag = took(s.lag) if s.HasField("lag") else "-"
        limit = rate_text(q.rate_limit) if q.HasField("rate_limit") else "-"
        table.add_row(cell(q.name, width=60), paused, *counts, lag, str(s.finished_last_minute), limit)
    return table


def queue_detail(q: adm.Queue) -> RenderableType:
    s, d = q.stats, q.defaults
    rows: list[tuple[str, Text | str]] = [
        ("queue", cell(q.name, width=None)),
        ("paused", Text("yes", style="yellow") if q.paused else "no"),
        ("jobs", ", ".join(f"{getattr(s, c)} {c}" for c in _COUNTS)),
        ("lag", took(s.lag) if s.HasField("lag") else "-"),
        ("done last minute", str(s.finished_last_minute)),
        ("rate limit", rate_text(q.rate_limit) if q.HasField("rate_limit") else "none"),
        ("max attempts", str(d.max_attempts) if d.HasField("max_attempts") else "server default (1)"),
        ("lease", took(d.lease_duration) if d.HasField("lease_duration") else "server default"),
        ("attempt timeout", took(d.attempt_timeout) if d.HasField("attempt_timeout") else "server default (none)"),
    ]
    rows.append(("backoff", _queue_backoff(d.backoff)))
    for state in ("succeeded", "cancelled", "dead"):
        field = f"retention_{state}"
        kept = took(getattr(d, field)) if d.HasField(field) else "server default"  # type: ignore[arg-type]
        rows.append((f"keep {state}", kept))
    return _grid(rows)


def _queue_backoff(b: job_pb2.BackoffPolicy) -> str:
    """The parts of a queue's backoff it sets; the rest are the server's."""
    parts = []
    if b.kind:
        parts.append(job_pb2.BackoffPolicy.Kind.Name(b.kind).removeprefix("KIND_").lower())
    if b.HasField("initial_interval"):
        parts.append(f"from {took(b.initial_interval)}")
    if b.HasField("max_interval"):
        parts.append(f"up to {took(b.max_interval)}")
    if b.multiplier:
        parts.append(f"x{b.multiplier:g}")
    if b.HasField("jitter"):
        parts.append("jitter" if b.jitter else "no jitter")
    return ", ".join(parts) + "; the rest server default" if parts else "server default"
