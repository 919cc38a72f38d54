"""Frozen values that cross layers: what a job is, independent of protobuf and of SQL."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    # A pipeline step whose parents have not all succeeded (docs/pipelines.md).
    WAITING = "waiting"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


class JobStatus(enum.Enum):
    """A job's status as operators ask about it: its state, with PENDING split in four
    (the rule of the queue stats and of sql/queues.sql)."""

    READY = "ready"  # PENDING, attempt 0, due, not throttled
    SCHEDULED = "scheduled"  # PENDING, attempt 0, due later
    RETRYING = "retrying"  # PENDING after a failed attempt
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    THROTTLED = "throttled"  # PENDING, attempt 0, due, held back by a rate limit
    WAITING = "waiting"  # a pipeline step waiting for its parents


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LEASE_EXPIRED = "lease_expired"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    # Handed back unfinished (Nack with release): recorded, but not counted as an attempt.
    RELEASED = "released"


class BackoffKind(enum.Enum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


@dataclass(frozen=True)
class Backoff:
    kind: BackoffKind = BackoffKind.EXPONENTIAL
    initial: timedelta = timedelta(seconds=1)
    max: timedelta = timedelta(minutes=5)
    multiplier: float = 2.0
    jitter: bool = True


@dataclass(frozen=True)
class JobError:
    type: str = ""
    message: str = ""
    details: str = ""


JSON = "application/json"


@dataclass(frozen=True)
class BackoffSpec:
    """A backoff as asked for: each None field takes the queue's default, then the server's."""

    kind: BackoffKind | None = None
    initial: timedelta | None = None
    max: timedelta | None = None
    multiplier: float | None = None
    jitter: bool | None = None


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` jobs started per `interval`, in bursts of at most `burst` (docs/rate-limits.md)."""

    limit: int
    interval: timedelta = timedelta(seconds=1)
    burst: int = 1


@dataclass(frozen=True)
class JobDefaults:
    """The server's defaults, for what neither the job nor its queue sets."""

    max_attempts: int = 1
    backoff: Backoff = Backoff()
    lease_duration: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class NewJob:
    """A validated request to create a job. None fields are resolved when the job is inserted:
    the queue's default, else the server's (JobDefaults), so queue defaults apply atomically."""

    queue: str
    payload: bytes
    content_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    run_at: datetime | None = None
    max_attempts: int | None = None
    backoff: BackoffSpec = BackoffSpec()
    lease_duration: timedelta | None = None
    attempt_timeout: timedelta | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    # The key counts the running jobs of every queue, not only this job's (docs/decisions.md).
    concurrency_global: bool = False
    # At most rate_limit of the jobs with this key (in any queue) start per its interval.
    rate_key: str | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class QueueDefaults:
    """A queue's own defaults for its new jobs; None means the server's."""

    max_attempts: int | None = None
    backoff: BackoffSpec = BackoffSpec()
    lease_duration: timedelta | None = None
    attempt_timeout: timedelta | None = None
    retention_succeeded: timedelta | None = None
    retention_cancelled: timedelta | None = None
    retention_dead: timedelta | None = None


@dataclass(frozen=True)
class QueueStats:
    """Jobs by derived status. ready/scheduled/retrying split PENDING: due now, due later (first
    attempt), and waiting out a retry backoff."""

    ready: int = 0
    scheduled: int = 0
    retrying: int = 0
    running: int = 0
    dead: int = 0
    succeeded: int = 0
    cancelled: int = 0
    # How long the oldest ready job has been due; None when nothing is ready.
    lag: timedelta | None = None
    finished_last_minute: int = 0
    # Due, first attempt, held back by the queue's or its key's rate limit (not counted as ready).
    throttled: int = 0


@dataclass(frozen=True)
class Queue:
    name: str
    paused: bool
    defaults: QueueDefaults
    stats: QueueStats
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class QueueUpdate:
    """New defaults for the queue's settings named in `fields` (QueueDefaults field names, with
    backoff.<field>); a named field whose value is None goes back to the server's default."""

    name: str
    defaults: QueueDefaults
    fields: frozenset[str]
    # With "rate_limit" in fields: the queue's new rate limit (None: none).
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class Attempt:
    number: int
    lease_token: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: Outcome | None
    error: JobError | None
    # The job's requeue count when the attempt started: a change marks a Requeue.
    requeues: int = 0
    # The attempt's log lines, when asked for (None: not read), and how many characters were cut.
    logs: str | None = None
    logs_dropped: int = 0


@dataclass(frozen=True)
class Job:
    id: int
    queue: str
    state: JobState
    payload: bytes
    content_type: str
    headers: Mapping[str, str]
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    backoff: Backoff
    lease_duration: timedelta
    attempt_timeout: timedelta | None
    idempotency_key: str | None
    concurrency_key: str | None
    concurrency_limit: int | None
    result: bytes | None
    result_content_type: str | None
    last_error: JobError | None
    checkpoint: bytes | None
    cancel_requested: bool
    lease_token: int | None
    worker_id: str | None
    started_at: datetime | None
    lease_expires_at: datetime | None
    attempt_deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    attempts: tuple[Attempt, ...] = ()
    # How many attempts the job has recorded (the running one included): `attempts` may be only
    # the latest of them (AttemptPage).
    attempts_total: int = 0
    more_attempts: bool = False
    requeues: int = 0
    concurrency_global: bool = False
    rate_key: str | None = None
    rate_limit: RateLimit | None = None
    # Set on pipeline steps (docs/pipelines.md).
    pipeline_id: int | None = None
    step_name: str | None = None
    parent_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Heartbeat:
    """A lease extension asked for by the worker holding the lease."""

    job_id: int
    lease_token: int
    lease_duration: timedelta | None = None
    checkpoint: bytes | None = None
    set_checkpoint: bool = False
    logs: str = ""


@dataclass(frozen=True)
class HeartbeatResult:
    lease_expires_at: datetime
    cancel_requested: bool


@dataclass(frozen=True)
class FollowUp:
    """A job an Ack creates in its transaction; with step_name, a step of the acked job's pipeline."""

    job: NewJob
    step_name: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ack:
    job_id: int
    lease_token: int
    result: bytes | None = None
    result_content_type: str | None = None
    logs: str = ""
    follow_ups: tuple[FollowUp, ...] = ()


@dataclass(frozen=True)
class Nack:
    job_id: int
    lease_token: int
    error: JobError
    retryable: bool = True
    retry_after: timedelta | None = None
    checkpoint: bytes | None = None
    set_checkpoint: bool = False
    # Give the job back unfinished: the attempt does not count and the job is ready again.
    release: bool = False
    logs: str = ""


@dataclass(frozen=True)
class AttemptPage:
    """Which attempts a read of a job returns: at most `size`, the latest older than `before`
    (a lease token; None: the latest of all, the running attempt included)."""

    size: int = 100
    before: int | None = None


@dataclass(frozen=True)
class LeaseRequest:
    queues: tuple[str, ...]
    max_jobs: int
    lease_duration: timedelta | None
    wait: timedelta
    worker_id: str | None
    # The most bytes the jobs may take in the answer (spool.answer_bytes); None: no bound.
    max_bytes: int | None = None


def is_json(content_type: str) -> bool:
    """application/json, with parameters or a +json suffix."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


class Order(enum.Enum):
    """Job ids are assigned in creation order, so id order is creation order."""

    NEWEST_FIRST = "newest"
    OLDEST_FIRST = "oldest"


@dataclass(frozen=True)
class JobFilter:
    """A validated search: every set field must match. Time ranges are [after, before)."""

    queues: tuple[str, ...] = ()
    states: tuple[JobState, ...] = ()
    statuses: tuple[JobStatus, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    error_contains: str | None = None
    # JSON text, already checked to parse.
    payload_contains: str | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    pipeline_id: int | None = None


@dataclass(frozen=True)
class JobPage:
    """One page of a search: up to `size` jobs after the job `after_id` in `order`."""

    filter: JobFilter
    order: Order
    size: int
    after_id: int | None = None


@dataclass(frozen=True)
class QueueActivity:
    """A queue's jobs finished per minute, oldest minute first."""

    queue: str
    succeeded: list[int]
    dead: list[int]


@dataclass(frozen=True)
class Retention:
    """How long finished jobs are kept, per terminal state, where the queue sets nothing else."""

    succeeded: timedelta = timedelta(days=7)
    cancelled: timedelta = timedelta(days=7)
    dead: timedelta = timedelta(days=30)
