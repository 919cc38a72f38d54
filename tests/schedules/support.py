"""Helpers for the schedule tests: an injected clock, a scheduler driven by hand, schedules made
through the API's own conversion, and the jobs they enqueued."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
from google.protobuf.duration_pb2 import Duration

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spoold.api import schedule_convert
from spoold.app import App
from spoold.loops import Scheduler
from spoold.scheduling import Firer
from spoold.store.schedules import ScheduleStore

# A Monday at midnight, far from the wall clock: nothing here may depend on the real time.
T0 = datetime(2031, 3, 3, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def set(self, **delta: float) -> datetime:
        """Sets the clock to T0 plus delta."""
        self.now = T0 + timedelta(**delta)
        return self.now


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d


def schedule_message(name: str, queue: str = "sched", **fields: Any) -> sp.Schedule:
    template = fields.pop("template", None) or qs.EnqueueRequest(queue=queue, payload=json.dumps({"n": 1}).encode())
    if "every" in fields:
        fields["interval"] = duration(fields.pop("every"))
    return sp.Schedule(name=name, template=template, **fields)


def store(app: App) -> ScheduleStore:
    assert app.pool is not None and app.store is not None
    return ScheduleStore(app.pool, app.store)


def scheduler(app: App, clock: Clock, grace: float = 10, pool: asyncpg.Pool | None = None) -> Scheduler:
    assert app.pool is not None and app.store is not None
    schedules = ScheduleStore(pool or app.pool, app.store)
    firer = Firer(
        partial(schedule_convert.template_job, settings=app.settings), timedelta(seconds=grace), random.Random(7)
    )
    return Scheduler(schedules, firer, interval=3600, clock=clock)


async def create(app: App, clock: Clock, name: str, **fields: Any) -> None:
    """Creates the schedule as CreateSchedule would, at the clock's time."""
    req = adm.CreateScheduleRequest(schedule=schedule_message(name, **fields))
    _, settings = schedule_convert.create(req, app.settings, clock())
    await store(app).create(name, settings, settings.timing.first_after(clock()))


async def fired_jobs(db: asyncpg.Connection, schedule: str) -> list[dict[str, Any]]:
    """The jobs the schedule enqueued, by fire time, with the fire time from their header."""
    found = await db.fetch(
        "SELECT id, state, run_at, idempotency_key, headers->>'spool-fire-time' AS fire_time FROM spool.jobs"
        " WHERE headers->>'spool-schedule' = $1 ORDER BY headers->>'spool-fire-time', id",
        schedule,
    )
    return [dict(r) for r in found]


def stamp(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")
