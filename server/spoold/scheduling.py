"""Firing schedules: the jobs a due schedule enqueues, under its row lock (store.schedules.Firing).
The scheduler loop fires what is due; TriggerSchedule fires one schedule now."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from spoold.errors import SpoolError, Unavailable
from spoold.model import NewJob
from spoold.schedules import FireOutcome, Overlap, job_for_fire, plan
from spoold.store.rows import JobRow
from spoold.store.schedules import Firing

log = logging.getLogger(__name__)

# A template (a spool.v1.EnqueueRequest) as the job it makes at `now`, checked as Enqueue checks a
# request; raises InvalidArgument (or PayloadTooLarge) if it no longer passes.
Template = Callable[[bytes, datetime], NewJob]


class Firer:
    def __init__(self, template: Template, grace: timedelta, rng: random.Random | None = None) -> None:
        self._template = template
        self._grace = grace
        self._rng = rng or random.Random()

    async def fire_due(self, f: Firing, now: datetime) -> int:
        """Fires the schedule's fire times due at `now` as its catch-up policy says, and moves it to
        its next fire time; returns how many jobs it enqueued."""
        s = f.schedule.settings
        due = plan(s.timing, f.schedule.next_fire_at, now, s.catch_up, s.catch_up_limit, self._grace)
        if due.dropped:
            log.warning(
                "schedule %s: fire times from %s were missed (no server ran it); catch-up %s fires %d of them",
                f.name,
                f.schedule.next_fire_at.isoformat(),
                s.catch_up.value,
                len([t for t in due.fires if t < now - self._grace]),
            )
        enqueued = 0
        for fire_time in due.fires:
            enqueued += await self._fire(f, fire_time, now) is not None
        await f.advance(due.next_fire_at)
        return enqueued

    async def _fire(self, f: Firing, fire_time: datetime, now: datetime) -> JobRow | None:
        s = f.schedule.settings
        if s.overlap is Overlap.SKIP and await f.previous_job_active():
            await f.record(fire_time, now, FireOutcome.SKIPPED, "the previous fire's job is still pending or running")
            return None
        try:
            return await self.trigger(f, fire_time, now, triggered=False)
        except Unavailable:
            raise
        except SpoolError as err:  # the template no longer passes (a limit was lowered): say so, go on
            log.warning("schedule %s: fire at %s enqueued nothing: %s", f.name, fire_time.isoformat(), err.message)
            await f.record(fire_time, now, FireOutcome.FAILED, err.message)
            return None

    async def trigger(self, f: Firing, fire_time: datetime, now: datetime, triggered: bool = True) -> JobRow | None:
        """Enqueues the job of one fire, whatever the overlap policy; None if that fire time was
        fired already. Raises the template's error if it no longer passes."""
        s = f.schedule.settings
        job = job_for_fire(self._template(s.template, now), f.name, fire_time, now, s.jitter, self._rng)
        return await f.enqueue(fire_time, job, now, triggered)
