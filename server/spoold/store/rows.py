"""Database records to domain values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from spoold.model import Attempt, Backoff, BackoffKind, Job, JobError, JobState, Outcome

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


def payload(row: asyncpg.Record) -> bytes:
    """JSON payloads are kept as jsonb, others as bytes."""
    payload_json = row["payload_json"]
    return payload_json.encode() if payload_json is not None else row["payload_bytes"] or b""


def job(row: JobRow, attempts: Iterable[asyncpg.Record] = ()) -> Job:
    headers = row["headers"]
    return Job(
        id=row["id"],
        queue=row["queue"],
        state=_STATES[row["state"]],
        payload=payload(row),
        content_type=row["content_type"],
        headers=json.loads(headers) if headers is not None else {},
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
