"""Schedule messages to validated domain values, and schedules back to proto. A schedule's job
template is an EnqueueRequest, checked by Enqueue's own conversion (convert.new_job)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from google.protobuf.message import DecodeError

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spoold import schedules as sch
from spoold.api import convert
from spoold.api import validate as v
from spoold.config import Settings
from spoold.errors import InvalidArgument
from spoold.model import NewJob
from spoold.schedules import CatchUp, Change, Fire, FireOutcome, Overlap, Schedule, Timing

MAX_JITTER = timedelta(days=1)
MAX_CRON_LENGTH = 256
_OVERLAPS = {sp.Schedule.OVERLAP_ALLOW: Overlap.ALLOW, sp.Schedule.OVERLAP_SKIP: Overlap.SKIP}
_CATCH_UPS = {
    sp.Schedule.CATCH_UP_LATEST: CatchUp.LATEST,
    sp.Schedule.CATCH_UP_ALL: CatchUp.ALL,
    sp.Schedule.CATCH_UP_NONE: CatchUp.NONE,
}
_OUTCOMES = {
    FireOutcome.ENQUEUED: sp.ScheduleFire.OUTCOME_ENQUEUED,
    FireOutcome.SKIPPED: sp.ScheduleFire.OUTCOME_SKIPPED,
    FireOutcome.FAILED: sp.ScheduleFire.OUTCOME_FAILED,
}
# update_mask paths -> schedules.FIELDS
_MASK = {
    "cron": "timing",
    "interval": "timing",
    "time_zone": "time_zone",
    "template": "template",
    "overlap": "overlap",
    "catch_up": "catch_up",
    "catch_up_limit": "catch_up_limit",
    "jitter": "jitter",
}
_RESERVED = (sch.SCHEDULE_HEADER, sch.FIRE_TIME_HEADER)
_TOKEN_PREFIX = "schedules:"

# ---- requests -> domain


def job_template(field: str, req: qs.EnqueueRequest, settings: Settings, now: datetime) -> NewJob:
    """The template as Enqueue would take it, without what each fire sets itself."""
    for name in ("run_at", "delay"):
        if req.HasField(name):
            raise InvalidArgument(f"{field}.{name}", "must be unset: each job is due at its fire time (see jitter)")
    if req.idempotency_key:
        raise InvalidArgument(f"{field}.idempotency_key", "must be unset: the schedule gives each fire's job its own")
    for header in _RESERVED:
        if header in req.headers:
            raise InvalidArgument(f"{field}.headers[{header!r}]", "must be unset: the schedule sets it on each job")
    return convert.new_job(req, settings, now, prefix=f"{field}.")


def template_job(template: bytes, now: datetime, settings: Settings) -> NewJob:
    """A stored template as the job it makes now (scheduling.Template)."""
    try:
        req = qs.EnqueueRequest.FromString(template)
    except DecodeError as exc:
        raise InvalidArgument("template", "not a valid EnqueueRequest") from exc
    return job_template("template", req, settings, now)


def _timing(field: str, s: sp.Schedule, time_zone: str) -> Timing:
    which = s.WhichOneof("timing")
    if which == "cron":
        cron = v.text(f"{field}.cron", s.cron, MAX_CRON_LENGTH, required=True)
        return Timing(cron=cron, time_zone=time_zone).check(f"{field}.")
    if which == "interval":
        every = v.duration(f"{field}.interval", s.interval, sch.MAX_INTERVAL)
        return Timing(every=every, time_zone=time_zone).check(f"{field}.")
    raise InvalidArgument(f"{field}.cron", "required: a cron expression, or an interval")


def _time_zone(field: str, s: sp.Schedule) -> str:
    name = v.text(f"{field}.time_zone", s.time_zone, 64) or "UTC"
    sch.zone(f"{field}.time_zone", name)
    return name


def _overlap(field: str, value: sp.Schedule.Overlap.ValueType) -> Overlap:
    if value and value not in _OVERLAPS:
        raise InvalidArgument(field, f"unknown value {value}")
    return _OVERLAPS.get(value, Overlap.ALLOW)


def _catch_up(field: str, value: sp.Schedule.CatchUp.ValueType) -> CatchUp:
    if value and value not in _CATCH_UPS:
        raise InvalidArgument(field, f"unknown value {value}")
    return _CATCH_UPS.get(value, CatchUp.LATEST)


def _settings(field: str, s: sp.Schedule, fields: frozenset[str], settings: Settings, now: datetime) -> sch.Settings:
    """The named fields checked and converted; the others keep placeholder values, never read."""
    time_zone = _time_zone(field, s) if fields & {"timing", "time_zone"} else "UTC"
    timing = _timing(field, s, time_zone) if "timing" in fields else Timing(time_zone=time_zone)
    template, queue = b"", ""
    if "template" in fields:
        if not s.HasField("template"):
            raise InvalidArgument(f"{field}.template", "required: the job each fire enqueues")
        queue = job_template(f"{field}.template", s.template, settings, now).queue
        template = s.template.SerializeToString(deterministic=True)
    jitter = timedelta(0)
    if "jitter" in fields and s.HasField("jitter"):
        jitter = v.duration(f"{field}.jitter", s.jitter, MAX_JITTER, allow_zero=True)
    limit = 100
    if "catch_up_limit" in fields and s.catch_up_limit:
        limit = v.in_range(f"{field}.catch_up_limit", s.catch_up_limit, 1, 1000)
    return sch.Settings(
        timing=timing,
        template=template,
        queue=queue,
        overlap=_overlap(f"{field}.overlap", s.overlap) if "overlap" in fields else Overlap.ALLOW,
        catch_up=_catch_up(f"{field}.catch_up", s.catch_up) if "catch_up" in fields else CatchUp.LATEST,
        catch_up_limit=limit,
        jitter=jitter,
    )


_ALL = frozenset(sch.FIELDS)


def create(req: adm.CreateScheduleRequest, settings: Settings, now: datetime) -> tuple[str, sch.Settings]:
    name = v.name("schedule.name", req.schedule.name, settings.limits)
    return name, _settings("schedule", req.schedule, _ALL, settings, now)


def _set_fields(s: sp.Schedule) -> frozenset[str]:
    """Without a mask: the fields the request sets."""
    found = {
        "timing": s.WhichOneof("timing") is not None,
        "time_zone": bool(s.time_zone),
        "template": s.HasField("template"),
        "overlap": s.overlap != 0,
        "catch_up": s.catch_up != 0,
        "catch_up_limit": s.catch_up_limit != 0,
        "jitter": s.HasField("jitter"),
    }
    return frozenset(f for f, present in found.items() if present)


def change(req: adm.UpdateScheduleRequest, settings: Settings, now: datetime) -> Change:
    name = v.name("schedule.name", req.schedule.name, settings.limits)
    if req.HasField("update_mask"):
        fields: set[str] = set()
        for i, path in enumerate(req.update_mask.paths):
            if path not in _MASK:
                raise InvalidArgument(f"update_mask.paths[{i}]", f"unknown field {path[:80]!r}")
            fields.add(_MASK[path])
        chosen = frozenset(fields)
    else:
        chosen = _set_fields(req.schedule)
    if not chosen:
        raise InvalidArgument("update_mask", "names no field to update (and schedule sets none)")
    # With allow_missing the schedule may be created from it: then every field must pass.
    checked = _ALL if req.allow_missing else chosen
    values = _settings("schedule", req.schedule, checked, settings, now)
    return Change(name=name, settings=values, fields=chosen, allow_missing=req.allow_missing)


def page_size(value: int) -> int:
    return v.in_range("page_size", value or 100, 1, 1000)


def page_after(token: str, settings: Settings) -> str:
    """The last name of the previous page ('' for the first page)."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("page_token", "malformed page token") from exc
    if not text.startswith(_TOKEN_PREFIX):
        raise InvalidArgument("page_token", "malformed page token")
    return v.name("page_token", text.removeprefix(_TOKEN_PREFIX), settings.limits)


def page_token(last: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + last).encode()).decode().rstrip("=")


# ---- domain -> proto

_OVERLAP_PROTO = {d: p for p, d in _OVERLAPS.items()}
_CATCH_UP_PROTO = {d: p for p, d in _CATCH_UPS.items()}
_STATE_PROTO = {s: p for p, s in convert.STATE_FROM_PROTO.items()}


def _fire_proto(f: Fire) -> sp.ScheduleFire:
    return sp.ScheduleFire(
        fire_time=convert.ts(f.fire_time),
        fired_at=convert.ts(f.fired_at),
        outcome=_OUTCOMES[f.outcome],
        job_id=str(f.job_id) if f.job_id is not None else "",
        job_state=_STATE_PROTO[f.job_state] if f.job_state is not None else job_pb2.Job.STATE_UNSPECIFIED,
        error=f.error or "",
        triggered=f.triggered,
    )


def schedule_proto(s: Schedule, now: datetime) -> sp.Schedule:
    t, st = s.settings.timing, s.settings
    out = sp.Schedule(
        name=s.name,
        time_zone=t.time_zone,
        template=qs.EnqueueRequest.FromString(st.template),
        overlap=_OVERLAP_PROTO[st.overlap],
        catch_up=_CATCH_UP_PROTO[st.catch_up],
        catch_up_limit=st.catch_up_limit,
        jitter=convert.dur(st.jitter),
        paused=s.paused,
        next_fire_times=[convert.timestamp(x) for x in s.upcoming(now)],
        last_fire=_fire_proto(s.last_fire) if s.last_fire is not None else None,
        created_at=convert.ts(s.created_at),
        updated_at=convert.ts(s.updated_at),
    )
    if t.every is not None:
        out.interval.CopyFrom(convert.duration(t.every))
    else:
        out.cron = t.cron or ""
    return out
