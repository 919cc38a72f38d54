"""Python values to and from the API's messages: payloads, durations, timestamps, filters, backoff."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict, Unpack

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

JSON = "application/json"
OCTETS = "application/octet-stream"

BackoffKind = Literal["exponential", "linear", "fixed"]
_KINDS = {
    "exponential": job_pb2.BackoffPolicy.KIND_EXPONENTIAL,
    "linear": job_pb2.BackoffPolicy.KIND_LINEAR,
    "fixed": job_pb2.BackoffPolicy.KIND_FIXED,
}


@dataclass(frozen=True)
class Backoff:
    """How long the queue waits before the next attempt; unset fields take the queue's defaults."""

    kind: BackoffKind = "exponential"
    initial: timedelta | None = None
    maximum: timedelta | None = None
    multiplier: float | None = None
    jitter: bool | None = None

    def to_proto(self) -> job_pb2.BackoffPolicy:
        policy = job_pb2.BackoffPolicy(kind=_KINDS[self.kind])
        if self.initial is not None:
            policy.initial_interval.CopyFrom(duration(self.initial))
        if self.maximum is not None:
            policy.max_interval.CopyFrom(duration(self.maximum))
        if self.multiplier is not None:
            policy.multiplier = self.multiplier
        if self.jitter is not None:
            policy.jitter = self.jitter
        return policy


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` jobs started per `per`, in bursts of at most `burst` (default 1: evenly spaced)."""

    limit: int
    per: timedelta = timedelta(seconds=1)
    burst: int | None = None

    def to_proto(self) -> job_pb2.RateLimit:
        r = job_pb2.RateLimit(limit=self.limit, interval=duration(self.per))
        if self.burst is not None:
            r.burst = self.burst
        return r

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> RateLimit:
        """ "10/s", "100/m", "100/1m", "5/30s", "1000/h" (ms, s, m, h, d)."""
        m = _RATE.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"not a rate: {text!r} (e.g. 10/s, 100/m, 5/30s)")
        count, unit = float(m.group(2) or 1), _RATE_UNITS[m.group(3)]
        return cls(int(m.group(1)), timedelta(**{unit: count}), burst)


_RATE = re.compile(r"(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)")
_RATE_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def timestamp(value: datetime) -> Timestamp:
    """A naive datetime is taken as UTC."""
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    return ts


def encode(value: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """Bytes go as they are (octet-stream unless told otherwise); anything else is encoded as JSON.
    NaN and infinities are no JSON: they raise ValueError here rather than be refused by the server."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), content_type or OCTETS
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"cannot encode as JSON: {exc} (NaN and infinities have no JSON form)") from exc
    return text.encode(), content_type or JSON


def decode_json(data: bytes) -> Any:
    return json.loads(data) if data else None


def payload_json(job: job_pb2.Job) -> Any:
    """The job's payload as a Python value (it must be JSON)."""
    return decode_json(job.payload)


def new_idempotency_key() -> str:
    """Makes Enqueue safe to retry: a retry after a lost answer finds the job the first try created."""
    return f"auto-{uuid.uuid4().hex}"


class EnqueueOptions(TypedDict, total=False):
    """The options of Client.enqueue; what is left out takes the queue's defaults."""

    content_type: str
    headers: Mapping[str, str]
    priority: int
    run_at: datetime
    delay: timedelta
    max_attempts: int
    backoff: Backoff
    lease_duration: timedelta
    attempt_timeout: timedelta
    idempotency_key: str
    concurrency_key: str
    concurrency_limit: int
    # True: the key's limit counts the running jobs of every queue, not only this one's.
    concurrency_global: bool
    # At most rate_limit of the jobs with this key start per its interval (any queue, any worker).
    rate_limit_key: str
    rate_limit: RateLimit


def enqueue_request(queue: str, payload: Any, **options: Unpack[EnqueueOptions]) -> qs.EnqueueRequest:
    """One EnqueueRequest, with a generated idempotency key when none is given."""
    req = job_request(queue, payload, **options)
    req.idempotency_key = req.idempotency_key or new_idempotency_key()
    return req


def job_request(queue: str, payload: Any, **options: Unpack[EnqueueOptions]) -> qs.EnqueueRequest:
    """One EnqueueRequest as the options give it (a schedule's job template has no idempotency key)."""
    body, ctype = encode(payload, options.get("content_type"))
    req = qs.EnqueueRequest(
        queue=queue,
        payload=body,
        content_type=ctype,
        headers=dict(options.get("headers") or {}),
        priority=options.get("priority", 0),
        idempotency_key=options.get("idempotency_key", ""),
        concurrency_key=options.get("concurrency_key", ""),
        concurrency_limit=options.get("concurrency_limit", 0),
    )
    if options.get("concurrency_global"):
        req.concurrency_scope = job_pb2.Job.CONCURRENCY_SCOPE_GLOBAL
    if "run_at" in options:
        req.run_at.CopyFrom(timestamp(options["run_at"]))
    if "delay" in options:
        req.delay.CopyFrom(duration(options["delay"]))
    if "max_attempts" in options:
        req.max_attempts = options["max_attempts"]
    if "backoff" in options:
        req.backoff.CopyFrom(options["backoff"].to_proto())
    if "lease_duration" in options:
        req.lease_duration.CopyFrom(duration(options["lease_duration"]))
    if "attempt_timeout" in options:
        req.attempt_timeout.CopyFrom(duration(options["attempt_timeout"]))
    if "rate_limit_key" in options:
        req.rate_limit_key = options["rate_limit_key"]
    if "rate_limit" in options:
        req.rate_limit.CopyFrom(options["rate_limit"].to_proto())
    return req


def batch_requests(queue: str, payloads: Iterable[Any], options: EnqueueOptions) -> list[qs.EnqueueRequest]:
    """One request per payload; a caller's idempotency key becomes key:0, key:1, ... so each stays unique."""
    key = options.get("idempotency_key")
    out = []
    for i, payload in enumerate(payloads):
        item: EnqueueOptions = {**options, "idempotency_key": f"{key}:{i}"} if key else options
        out.append(enqueue_request(queue, payload, **item))
    return out


def state(value: str | int) -> job_pb2.Job.State.ValueType:
    """A state from its number or its name, in any case, with or without STATE_ ("dead", "STATE_DEAD")."""
    if isinstance(value, int):
        return job_pb2.Job.State.Value(job_pb2.Job.State.Name(value))  # type: ignore[arg-type]
    name = value.upper()
    return job_pb2.Job.State.Value(name if name.startswith("STATE_") else f"STATE_{name}")


def state_name(value: int) -> str:
    """ "DEAD" for STATE_DEAD."""
    return job_pb2.Job.State.Name(value).removeprefix("STATE_")  # type: ignore[arg-type]


def status(value: str | int) -> job_pb2.Job.Status.ValueType:
    """A derived status from its number or its name, in any case, with or without STATUS_ ("retrying")."""
    if isinstance(value, int):
        return job_pb2.Job.Status.Value(job_pb2.Job.Status.Name(value))  # type: ignore[arg-type]
    name = value.upper()
    return job_pb2.Job.Status.Value(name if name.startswith("STATUS_") else f"STATUS_{name}")


def job_status(job: job_pb2.Job, now: datetime | None = None) -> str:
    """The job's derived status, as ListJobs' `statuses` filter and the queue stats count it:
    "ready", "scheduled" or "retrying" for a PENDING job, else its state ("dead")."""
    if job.state != job_pb2.Job.STATE_PENDING:
        return state_name(job.state).lower()
    if job.attempt > 0:
        return "retrying"
    due = job.run_at.ToDatetime(tzinfo=UTC) <= (now or datetime.now(UTC))
    return "ready" if due else "scheduled"


@dataclass(frozen=True)
class Filter:
    """Selects jobs for list() and requeue_matching(); every criterion given must match.

    payload_contains is a JSON document the payload must contain: a str is sent as it is, anything
    else is encoded. Naive datetimes are taken as UTC.
    """

    queues: Sequence[str] = ()
    states: Sequence[str | int] = ()
    # Derived statuses ("ready", "scheduled", "retrying", "running", ...); any of them matches.
    statuses: Sequence[str | int] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    error_contains: str = ""
    payload_contains: Any = None
    idempotency_key: str = ""
    concurrency_key: str = ""
    pipeline_id: str = ""

    def to_proto(self) -> job_pb2.JobFilter:
        f = job_pb2.JobFilter(
            queues=list(self.queues),
            states=[state(s) for s in self.states],
            statuses=[status(s) for s in self.statuses],
            error_contains=self.error_contains,
            idempotency_key=self.idempotency_key,
            concurrency_key=self.concurrency_key,
            pipeline_id=self.pipeline_id,
        )
        if self.payload_contains is not None:
            pc = self.payload_contains
            f.payload_contains = pc if isinstance(pc, str) else json.dumps(pc)
        for name in ("created_after", "created_before", "finished_after", "finished_before"):
            value = getattr(self, name)
            if value is not None:
                getattr(f, name).CopyFrom(timestamp(value))
        return f


ORDERS = {
    "newest": qs.ListJobsRequest.ORDER_NEWEST_FIRST,
    "oldest": qs.ListJobsRequest.ORDER_OLDEST_FIRST,
}
