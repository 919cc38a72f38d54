"""AdminService's schedule RPCs (a part of api/admin_service.AdminService). No SQL here.

A key restricted to some queues sees and manages the schedules whose template's queue it may use;
the others are answered as missing, as the jobs of such queues are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from spool.v1 import admin_service_pb2 as adm
from spoold.api import convert, schedule_convert
from spoold.api import validate as v
from spoold.api.access import Access
from spoold.api.calls import CallContext as Context
from spoold.api.errors import unary
from spoold.config import Settings
from spoold.errors import ScheduleNotFound, WrongState
from spoold.schedules import Change, Schedule
from spoold.scheduling import Firer
from spoold.store import rows
from spoold.store.schedules import ScheduleStore


class ScheduleAdmin:
    _schedules: ScheduleStore
    _firer: Firer
    _settings: Settings
    _access: Access
    _clock: Callable[[], datetime]

    async def _visible(self, name: str, field: str = "name") -> Schedule:
        try:
            schedule = await self._schedules.get(name)
        except ScheduleNotFound:
            raise ScheduleNotFound(name, field=field) from None
        if not self._access.sees(schedule.settings.queue):
            raise ScheduleNotFound(name, field=field)
        return schedule

    def _name(self, value: str) -> str:
        return v.name("name", value, self._settings.limits)

    @unary
    async def CreateSchedule(self, request: adm.CreateScheduleRequest, context: Context) -> adm.CreateScheduleResponse:
        now = self._clock()
        name, settings = schedule_convert.create(request, self._settings, now)
        self._access.enqueue(settings.queue, convert.wants_global(request.schedule.template), "schedule.template.")
        schedule = await self._schedules.create(name, settings, settings.timing.first_after(now))
        return adm.CreateScheduleResponse(schedule=schedule_convert.schedule_proto(schedule, now))

    @unary
    async def GetSchedule(self, request: adm.GetScheduleRequest, context: Context) -> adm.GetScheduleResponse:
        schedule = await self._visible(self._name(request.name))
        return adm.GetScheduleResponse(schedule=schedule_convert.schedule_proto(schedule, self._clock()))

    @unary
    async def ListSchedules(self, request: adm.ListSchedulesRequest, context: Context) -> adm.ListSchedulesResponse:
        size = schedule_convert.page_size(request.page_size)
        after = schedule_convert.page_after(request.page_token, self._settings)
        found = await self._schedules.page(after, size + 1, self._access.like())
        now = self._clock()
        shown = [schedule_convert.schedule_proto(s, now) for s in found[:size]]
        out = adm.ListSchedulesResponse(schedules=shown)
        if len(found) > size:
            out.next_page_token = schedule_convert.page_token(found[size - 1].name)
        return out

    @unary
    async def UpdateSchedule(self, request: adm.UpdateScheduleRequest, context: Context) -> adm.UpdateScheduleResponse:
        now = self._clock()
        change: Change = schedule_convert.change(request, self._settings, now)
        if "template" in change.fields or change.allow_missing:
            self._access.enqueue(
                change.settings.queue, convert.wants_global(request.schedule.template), "schedule.template."
            )
        if not change.allow_missing:
            await self._visible(change.name, "schedule.name")
        schedule = await self._schedules.change(change, now)
        return adm.UpdateScheduleResponse(schedule=schedule_convert.schedule_proto(schedule, now))

    @unary
    async def DeleteSchedule(self, request: adm.DeleteScheduleRequest, context: Context) -> adm.DeleteScheduleResponse:
        name = (await self._visible(self._name(request.name))).name
        await self._schedules.delete(name)
        return adm.DeleteScheduleResponse()

    @unary
    async def PauseSchedule(self, request: adm.PauseScheduleRequest, context: Context) -> adm.PauseScheduleResponse:
        now = self._clock()
        name = (await self._visible(self._name(request.name))).name
        schedule = await self._schedules.set_paused(name, True, now)
        return adm.PauseScheduleResponse(schedule=schedule_convert.schedule_proto(schedule, now))

    @unary
    async def ResumeSchedule(self, request: adm.ResumeScheduleRequest, context: Context) -> adm.ResumeScheduleResponse:
        now = self._clock()
        name = (await self._visible(self._name(request.name))).name
        schedule = await self._schedules.set_paused(name, False, now)
        return adm.ResumeScheduleResponse(schedule=schedule_convert.schedule_proto(schedule, now))

    @unary
    async def TriggerSchedule(
        self, request: adm.TriggerScheduleRequest, context: Context
    ) -> adm.TriggerScheduleResponse:
        name = (await self._visible(self._name(request.name))).name
        now = self._clock()
        async with self._schedules.locked(name) as firing:
            row = await self._firer.trigger(firing, now, now)
        if row is None:  # a fire at this very microsecond exists: the call raced another trigger
            raise WrongState(f"name: schedule {name!r} was fired at {now.isoformat()} already; trigger again")
        schedule = await self._schedules.get(name)
        return adm.TriggerScheduleResponse(
            schedule=schedule_convert.schedule_proto(schedule, now), job=convert.job_proto(rows.job(row))
        )
