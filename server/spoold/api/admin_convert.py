"""AdminService messages to validated domain values, and queues back to proto."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spoold.api import convert
from spoold.api import validate as v
from spoold.config import Limits
from spoold.errors import InvalidArgument
from spoold.model import BackoffKind, BackoffSpec, Queue, QueueDefaults, QueueUpdate

MAX_RETENTION = timedelta(days=3650)

_KIND_PROTO = {
    BackoffKind.EXPONENTIAL: job_pb2.BackoffPolicy.KIND_EXPONENTIAL,
    BackoffKind.LINEAR: job_pb2.BackoffPolicy.KIND_LINEAR,
    BackoffKind.FIXED: job_pb2.BackoffPolicy.KIND_FIXED,
}

_BACKOFF_PATHS = {
    "backoff.kind": "backoff.kind",
    "backoff.initial_interval": "backoff.initial",
    "backoff.max_interval": "backoff.max",
    "backoff.multiplier": "backoff.multiplier",
    "backoff.jitter": "backoff.jitter",
}
_PLAIN = ("max_attempts", "lease_duration", "attempt_timeout", "retention_succeeded", "retention_cancelled")
# update_mask paths (relative to QueueDefaults) -> QueueUpdate field names.
MASK_PATHS: dict[str, frozenset[str]] = {
    **{p: frozenset({p}) for p in (*_PLAIN, "retention_dead")},
    **{p: frozenset({f}) for p, f in _BACKOFF_PATHS.items()},
    "backoff": frozenset(_BACKOFF_PATHS.values()),
}


def _retention(
    field: str, d: adm.QueueDefaults, name: Literal["retention_succeeded", "retention_cancelled", "retention_dead"]
) -> timedelta | None:
    if not d.HasField(name):
        return None
    return v.duration(f"{field}.{name}", getattr(d, name), MAX_RETENTION, allow_zero=True)


def defaults(field: str, d: adm.QueueDefaults, lim: Limits) -> QueueDefaults:
    """Every set field, checked as strictly as the same field of an Enqueue."""
    return QueueDefaults(
        max_attempts=v.in_range(f"{field}.max_attempts", d.max_attempts, 1, 100)
        if d.HasField("max_attempts")
        else None,
        backoff=convert.backoff_spec(f"{field}.backoff", d.backoff, lim) if d.HasField("backoff") else BackoffSpec(),
        lease_duration=(
            v.duration(f"{field}.lease_duration", d.lease_duration, lim.max_lease_duration)
            if d.HasField("lease_duration")
            else None
        ),
        attempt_timeout=(
            v.duration(f"{field}.attempt_timeout", d.attempt_timeout, lim.max_attempt_timeout)
            if d.HasField("attempt_timeout")
            else None
        ),
        retention_succeeded=_retention(field, d, "retention_succeeded"),
        retention_cancelled=_retention(field, d, "retention_cancelled"),
        retention_dead=_retention(field, d, "retention_dead"),
    )


def _set_fields(d: QueueDefaults) -> frozenset[str]:
    """Without a mask: the fields the request sets."""
    found = {f for f in (*_PLAIN, "retention_dead") if getattr(d, f) is not None}
    found |= {f for f in _BACKOFF_PATHS.values() if getattr(d.backoff, f.removeprefix("backoff.")) is not None}
    return frozenset(found)


def update(req: adm.UpdateQueueRequest, lim: Limits) -> QueueUpdate:
    name = v.name("name", req.name, lim)
    values = defaults("defaults", req.defaults, lim)
    rate = convert.rate_limit("rate_limit", req.rate_limit) if req.HasField("rate_limit") else None
    if req.HasField("update_mask"):
        fields: set[str] = set()
        for i, path in enumerate(req.update_mask.paths):
            if path == "rate_limit":
                fields.add(path)
                continue
            if path not in MASK_PATHS:
                raise InvalidArgument(f"update_mask.paths[{i}]", f"unknown field {path[:80]!r}")
            fields |= MASK_PATHS[path]
        chosen = frozenset(fields)
    else:
        chosen = _set_fields(values) | ({"rate_limit"} if rate is not None else set())
    if not chosen:
        raise InvalidArgument("update_mask", "names no field to update (and defaults sets none)")
    return QueueUpdate(name=name, defaults=values, fields=chosen, rate_limit=rate)


def _backoff_proto(b: BackoffSpec) -> job_pb2.BackoffPolicy:
    out = job_pb2.BackoffPolicy(
        kind=_KIND_PROTO[b.kind] if b.kind else job_pb2.BackoffPolicy.KIND_UNSPECIFIED,
        initial_interval=convert.dur(b.initial),
        max_interval=convert.dur(b.max),
        multiplier=b.multiplier or 0.0,
    )
    if b.jitter is not None:
        out.jitter = b.jitter
    return out


def _defaults_proto(d: QueueDefaults) -> adm.QueueDefaults:
    out = adm.QueueDefaults(
        backoff=_backoff_proto(d.backoff),
        lease_duration=convert.dur(d.lease_duration),
        attempt_timeout=convert.dur(d.attempt_timeout),
        retention_succeeded=convert.dur(d.retention_succeeded),
        retention_cancelled=convert.dur(d.retention_cancelled),
        retention_dead=convert.dur(d.retention_dead),
    )
    if d.max_attempts is not None:
        out.max_attempts = d.max_attempts
    return out


def queue_proto(q: Queue) -> adm.Queue:
    s = q.stats
    return adm.Queue(
        name=q.name,
        paused=q.paused,
        defaults=_defaults_proto(q.defaults),
        stats=adm.QueueStats(
            ready=s.ready,
            scheduled=s.scheduled,
            retrying=s.retrying,
            running=s.running,
            dead=s.dead,
            succeeded=s.succeeded,
            cancelled=s.cancelled,
            lag=convert.dur(s.lag),
            finished_last_minute=s.finished_last_minute,
            throttled=s.throttled,
        ),
        rate_limit=convert.rate_limit_proto(q.rate_limit),
    )
