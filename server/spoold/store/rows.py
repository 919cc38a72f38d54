"""Database records to domain values."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import asyncpg

from spoold.model import Attempt, Backoff, BackoffKind, Job, JobError, JobState, Outcome, RateLimit

log = logging.getLogger(__name__)

# A spool.jobs row as a statement returned it. Enqueued and claimed jobs stay rows until they are
# sent (see api/convert.py, _row_fields); everything else becomes a Job.
JobRow = asyncpg.Record


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A job an Enqueue created or, for a taken idempotency key, found (deduplicated)."""

    row: JobRow
    deduplicated: bool


# Enum values by their database label: a dict lookup is several times cheaper than Enum(value).
_STATES = {s.value: s for s in JobState}
_KINDS = {k.value: k for k in BackoffKind}
_OUTCOMES = {o.value: o for o in Outcome}


def error(row: asyncpg.Record) -> JobError | None:
    if row["error_type"] is None and row["error_message"] is None:
        return None
    return JobError(
        type=row["error_type"] or "",
        message=row["error_message"] or "",
        details=row["error_details"] or "",
    )


def rate_limit(row: asyncpg.Record) -> RateLimit | None:
    """A job's or a queue's rate limit, from its rate_limit, rate_interval and rate_burst columns."""
    if row["rate_limit"] is None:
        return None
    return RateLimit(row["rate_limit"], row["rate_interval"], row["rate_burst"])


def payload(row: asyncpg.Record) -> bytes:
    """JSON payloads are kept as jsonb, others as bytes."""
    payload_json = row["payload_json"]
    return payload_json.encode() if payload_json is not None else row["payload_bytes"] or b""


def headers(row: JobRow) -> dict[str, str]:
    """The job's headers as the API's string map. The table's CHECK keeps them an object of strings;
    a row that is not one (written before that check existed, or with it dropped) is converted here
    rather than allowed to fail the call that reads it, and with it every job claimed or listed beside it."""
    raw = row["headers"]
    if raw is None:
        return {}
    try:
        # Numbers stay as printed: jsonb prints them in full, and a long one would not parse as an int.
        value = _HEADERS.decode(raw)
    except (ValueError, RecursionError):
        value = None
    if type(value) is dict and all(type(v) is str for v in value.values()):
        return value
    log.warning("job %s: headers are not an object of strings; converted for the API", row["id"])
    if type(value) is not dict:
        return {}
    return {k: v if type(v) is str else _json_text(v) for k, v in value.items()}


class _Literal(str):
    """A JSON number, kept as the text PostgreSQL printed."""


_HEADERS = json.JSONDecoder(parse_int=_Literal, parse_float=_Literal)


def _json_text(value: object) -> str:
    """Compact JSON for a parsed header value, its numbers as they were printed."""
    if isinstance(value, _Literal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def job(row: JobRow, attempts: Iterable[asyncpg.Record] = ()) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        state=_STATES[row["state"]],
        payload=payload(row),
        content_type=row["content_type"],
        headers=headers(row),
        priority=row["priority"],
        run_at=row["run_at"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        backoff=Backoff(
            kind=_KINDS[row["backoff_kind"]],
            initial=row["backoff_initial"],
            max=row["backoff_max"],
            multiplier=row["backoff_multiplier"],
            jitter=row["backoff_jitter"],
        ),
        lease_duration=row["lease_duration"],
        attempt_timeout=row["attempt_timeout"],
        idempotency_key=row["idempotency_key"],
        concurrency_key=row["concurrency_key"],
        concurrency_limit=row["concurrency_limit"],
        concurrency_global=row["concurrency_global"],
        result=row["result"],
        result_content_type=row["result_content_type"],
        last_error=error(row),
        checkpoint=row["checkpoint"],
        cancel_requested=row["cancel_requested"],
        lease_token=row["lease_token"],
        worker_id=row["worker_id"],
        started_at=row["started_at"],
        lease_expires_at=row["lease_expires_at"],
        attempt_deadline=row["attempt_deadline"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        attempts=tuple(attempt(a) for a in attempts),
        requeues=row["requeues"],
        rate_key=row["rate_key"],
        rate_limit=rate_limit(row),
        pipeline_id=row["pipeline_id"],
        step_name=row["step_name"],
        parent_ids=tuple(row["parent_ids"] or ()),
    )


def attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        number=row["number"],
        lease_token=row["lease_token"],
        worker_id=row["worker_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=_OUTCOMES[row["outcome"]],
        error=error(row),
        requeues=row["requeues"],
    )


def running_attempt(j: Job) -> Attempt | None:
    """The attempt in progress, which lives on the job row until it ends."""
    if j.state is not JobState.RUNNING or j.started_at is None or j.lease_token is None:
        return None
    return Attempt(
        number=j.attempt,
        lease_token=j.lease_token,
        worker_id=j.worker_id,
        started_at=j.started_at,
        finished_at=None,
        outcome=None,
        error=None,
        requeues=j.requeues,
    )


def with_logs(j: Job, found: Sequence[asyncpg.Record]) -> Job:
    """The job with each attempt's log lines (get_logs' rows): empty for an attempt that sent none."""
    by_token = {r["lease_token"]: r for r in found}

    def logged(a: Attempt) -> Attempt:
        r = by_token.get(a.lease_token)
        return replace(a, logs=r["logs"] if r else "", logs_dropped=r["dropped"] if r else 0)

    return replace(j, attempts=tuple(logged(a) for a in j.attempts))
