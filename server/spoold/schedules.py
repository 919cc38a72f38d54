"""Schedules as domain values: when one fires (cron or interval, in a time zone), which fire times
a late scheduler still fires (the catch-up policy), and the job each fire enqueues.

Cron expressions are read by cronsim, time zones by zoneinfo: nothing here parses either.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from spoold.errors import InvalidArgument
from spoold.model import JobState, NewJob

# The macros of Vixie cron, as the 5-field expressions they stand for. (@reboot has no fire times.)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
# Headers each fire's job carries; a template may not set them.
SCHEDULE_HEADER = "spool-schedule"
FIRE_TIME_HEADER = "spool-fire-time"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class Overlap(enum.Enum):
    ALLOW = "allow"
    SKIP = "skip"


class CatchUp(enum.Enum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class FireOutcome(enum.Enum):
    ENQUEUED = "enqueued"
    SKIPPED = "skipped"
    FAILED = "failed"


def zone(field: str, name: str) -> ZoneInfo:
    """The IANA time zone of this name, or INVALID_ARGUMENT."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: a key like "../x" or "/etc"
        raise InvalidArgument(field, f"unknown time zone {name[:64]!r} (an IANA name, e.g. Europe/Berlin)") from exc


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron expression read in a time zone, or an interval."""

    cron: str | None = None
    every: timedelta | None = None
    time_zone: str = "UTC"

    @cached_property
    def _zone(self) -> ZoneInfo:
        return zone("time_zone", self.time_zone)

    @property
    def _expression(self) -> str:
        assert self.cron is not None
        return MACROS.get(self.cron.strip().lower(), self.cron)

    def check(self, prefix: str = "") -> Timing:
        """Raises INVALID_ARGUMENT, naming the field, unless the timing can be computed."""
        if (self.cron is None) == (self.every is None):
            raise InvalidArgument(f"{prefix}cron", "give a cron expression or an interval")
        zone(f"{prefix}time_zone", self.time_zone)
        if self.every is not None:
            if not MIN_INTERVAL <= self.every <= MAX_INTERVAL:
                raise InvalidArgument(f"{prefix}interval", f"must be between {MIN_INTERVAL} and {MAX_INTERVAL}")
            return self
        try:
            next(CronSim(self._expression, datetime.now(self._zone)))
        except (CronSimError, StopIteration) as exc:
            detail = str(exc) or "never fires"
            raise InvalidArgument(f"{prefix}cron", f"not a valid cron expression: {detail.lower()}") from exc
        return self

    def after(self, t: datetime, n: int) -> list[datetime]:
        """The next n fire times strictly after t, in UTC."""
        if self.every is not None:
            first = _EPOCH + self.every * ((t - _EPOCH) // self.every + 1)
            return [first + self.every * i for i in range(n)]
        found = CronSim(self._expression, t.astimezone(self._zone))
        return [f.astimezone(UTC) for f in islice(found, n)]

    def at_or_before(self, t: datetime, n: int) -> list[datetime]:
        """Up to n fire times at or before t, newest first, in UTC."""
        if self.every is not None:
            last = _EPOCH + self.every * ((t - _EPOCH) // self.every)
            return [last - self.every * i for i in range(n)]
        # cronsim's reverse iteration starts strictly before its start; fire times are whole seconds.
        start = t.replace(microsecond=0) + _SECOND
        found = CronSim(self._expression, start.astimezone(self._zone), reverse=True)
        return [f.astimezone(UTC) for f in islice(found, n)]

    def first_after(self, t: datetime) -> datetime:
        return self.after(t, 1)[0]


@dataclass(frozen=True)
class Plan:
    """What a scheduler that finds a schedule due does: enqueue for `fires` (oldest first), drop
    the missed fire times its catch-up policy leaves out, and wait for `next_fire_at`."""

    fires: tuple[datetime, ...]
    dropped: bool
    next_fire_at: datetime


def plan(
    timing: Timing, next_fire_at: datetime, now: datetime, catch_up: CatchUp, limit: int, grace: timedelta
) -> Plan:
    """The fire times due from next_fire_at to now. Those within `grace` of now are on time and all
    fire; older ones were missed (no scheduler ran) and fire as the catch-up policy says."""
    keep = {CatchUp.LATEST: 1, CatchUp.ALL: limit, CatchUp.NONE: 0}[catch_up]
    due: list[datetime] = []
    missed = 0
    # Newest first, so that a long outage costs `keep` fire times of work, not one per fire time missed.
    batch = 64
    start = now
    while True:
        found = [f for f in timing.at_or_before(start, batch) if f >= next_fire_at]
        for f in found:
            if f >= now - grace:
                due.append(f)
            elif missed < keep:
                due.append(f)
                missed += 1
            else:
                return Plan(tuple(reversed(due)), True, timing.first_after(now))
        if len(found) < batch:
            return Plan(tuple(reversed(due)), False, timing.first_after(now))
        start = found[-1] - timedelta(microseconds=1)


@dataclass(frozen=True)
class Settings:
    """What a caller sets on a schedule. `template` is a spool.v1.EnqueueRequest, already checked
    as Enqueue checks its request; `queue` is its queue."""

    timing: Timing
    template: bytes
    queue: str
    overlap: Overlap = Overlap.ALLOW
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_limit: int = 100
    jitter: timedelta = timedelta(0)


# Settings' fields by the name an update mask gives them; "cron" and "interval" are both the timing.
FIELDS = ("timing", "time_zone", "template", "overlap", "catch_up", "catch_up_limit", "jitter")


@dataclass(frozen=True)
class Change:
    """New values for the fields named in `fields` (FIELDS); with allow_missing, a schedule to
    create when there is none of this name (then `settings` holds every field)."""

    name: str
    settings: Settings
    fields: frozenset[str]
    allow_missing: bool = False

    def applied_to(self, current: Settings) -> Settings:
        s, f = self.settings, self.fields
        timing = current.timing
        if "timing" in f or "time_zone" in f:
            timing = Timing(
                cron=(s.timing.cron if "timing" in f else timing.cron),
                every=(s.timing.every if "timing" in f else timing.every),
                time_zone=(s.timing.time_zone if "time_zone" in f else timing.time_zone),
            )
        return Settings(
            timing=timing,
            template=s.template if "template" in f else current.template,
            queue=s.queue if "template" in f else current.queue,
            overlap=s.overlap if "overlap" in f else current.overlap,
            catch_up=s.catch_up if "catch_up" in f else current.catch_up,
            catch_up_limit=s.catch_up_limit if "catch_up_limit" in f else current.catch_up_limit,
            jitter=s.jitter if "jitter" in f else current.jitter,
        )


@dataclass(frozen=True)
class Fire:
    fire_time: datetime
    fired_at: datetime
    outcome: FireOutcome
    job_id: int | None = None
    job_state: JobState | None = None
    error: str | None = None
    triggered: bool = False


@dataclass(frozen=True)
class Schedule:
    name: str
    settings: Settings
    paused: bool
    next_fire_at: datetime
    created_at: datetime
    updated_at: datetime
    last_fire: Fire | None = None

    def upcoming(self, now: datetime, n: int = 5) -> list[datetime]:
        """The next n fire times: from the next one not handled yet, or, paused, from now."""
        timing = self.settings.timing
        if self.paused:
            return timing.after(now, n)
        return [self.next_fire_at, *timing.after(self.next_fire_at, n - 1)]


def fire_time_text(t: datetime) -> str:
    """RFC 3339 in UTC, as the spool-fire-time header carries it."""
    text = t.astimezone(UTC).isoformat(timespec="microseconds" if t.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def job_for_fire(
    template: NewJob, name: str, fire_time: datetime, now: datetime, jitter: timedelta, rng: random.Random
) -> NewJob:
    """The template's job for one fire: the fire time in a header and in the idempotency key (one
    job per fire time), due at the fire time plus its jitter (a time already past is now)."""
    run_at = fire_time + jitter * rng.random() if jitter else fire_time
    stamp = fire_time_text(fire_time)
    return replace(
        template,
        headers={**template.headers, SCHEDULE_HEADER: name, FIRE_TIME_HEADER: stamp},
        idempotency_key=f"spool-schedule:{name}@{stamp}",
        run_at=run_at if run_at > now else None,
    )
