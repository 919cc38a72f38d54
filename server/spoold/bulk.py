"""Bulk operations: a requeue or cancel over every job matching a filter, as tracked work.

The operation is a row (spool.bulk_operations); loops/bulk.py handles its jobs in batches, in id
order from a cursor up to the newest job at the start, so that each matching job is visited once.
The filter is kept twice: as given (the API's JSON, for the record) and as the server reads it back
for each batch (`criteria`, the validated JobFilter written out here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spoold.model import JobFilter, JobState, JobStatus


class BulkAction(enum.Enum):
    REQUEUE = "requeue"
    CANCEL = "cancel"


class BulkState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"


# The states each action may change, before the filter narrows them.
_ACTS_ON = {
    BulkAction.REQUEUE: (JobState.DEAD, JobState.CANCELLED),
    BulkAction.CANCEL: (JobState.PENDING, JobState.RUNNING),
}


def acted_on(action: BulkAction, f: JobFilter, include_succeeded: bool) -> list[JobState]:
    """The states the action may touch, narrowed by the filter's own states."""
    allowed: tuple[JobState, ...] = _ACTS_ON[action]
    if action is BulkAction.REQUEUE and include_succeeded:
        allowed = (*allowed, JobState.SUCCEEDED)
    return [s for s in allowed if not f.states or s in f.states]


@dataclass(frozen=True)
class BulkOperation:
    id: int
    action: BulkAction
    filter: dict[str, Any]  # as given, for the record
    criteria: JobFilter
    include_succeeded: bool
    state: BulkState
    expected: int
    done: int
    cursor: int
    max_id: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def criteria_json(f: JobFilter) -> dict[str, Any]:
    """A validated filter written out, to be read back by `criteria`."""
    out: dict[str, Any] = {
        "queues": list(f.queues),
        "states": [s.value for s in f.states],
        "statuses": [s.value for s in f.statuses],
    }
    for name in ("created_after", "created_before", "finished_after", "finished_before"):
        value = getattr(f, name)
        out[name] = value.isoformat() if value is not None else None
    for name in ("error_contains", "payload_contains", "idempotency_key", "concurrency_key", "pipeline_id"):
        out[name] = getattr(f, name)
    return out


def criteria(data: dict[str, Any]) -> JobFilter:
    times = {
        name: datetime.fromisoformat(data[name]) if data.get(name) else None
        for name in ("created_after", "created_before", "finished_after", "finished_before")
    }
    return JobFilter(
        queues=tuple(data.get("queues", ())),
        states=tuple(JobState(s) for s in data.get("states", ())),
        statuses=tuple(JobStatus(s) for s in data.get("statuses", ())),
        error_contains=data.get("error_contains"),
        payload_contains=data.get("payload_contains"),
        idempotency_key=data.get("idempotency_key"),
        concurrency_key=data.get("concurrency_key"),
        pipeline_id=data.get("pipeline_id"),
        **times,
    )
