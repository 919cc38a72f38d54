"""Schedules from Python: ScheduleSpec describes one (what a Worker declares, what `spool schedules
create` sends), and client.schedules manages them on the server (AdminService)."""

from __future__ import annotations

import builtins
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from spool._convert import EnqueueOptions, duration, job_request
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import schedule_pb2 as sp

if TYPE_CHECKING:
    from spool.client import AsyncClient, Client

Schedule = sp.Schedule
Overlap = Literal["allow", "skip"]
CatchUp = Literal["latest", "all", "none"]
_OVERLAPS = {"allow": sp.Schedule.OVERLAP_ALLOW, "skip": sp.Schedule.OVERLAP_SKIP}
_CATCH_UPS = {"latest": sp.Schedule.CATCH_UP_LATEST, "all": sp.Schedule.CATCH_UP_ALL, "none": sp.Schedule.CATCH_UP_NONE}
_EVERY = re.compile(r"every\s+(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# What a declaration sets: all of a schedule but its pause, which stays an operator's decision.
DECLARED = ("time_zone", "template", "overlap", "catch_up", "catch_up_limit", "jitter")


def interval(when: str) -> timedelta | None:
    """ "every 30s" (ms, s, m, h or d) as a timedelta; None for anything else (a cron expression)."""
    m = _EVERY.fullmatch(when.strip())
    return timedelta(**{_UNITS[m.group(2).lower()]: float(m.group(1))}) if m else None


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule: at each fire time of `when`, one job in `queue` with `payload` and `options`.

    `when` is a cron expression (5 fields, or 6 with seconds first, or @daily-style), read in
    `time_zone`, or "every 30s" (ms, s, m, h or d). See docs/schedules.md for the policies.
    """

    name: str
    when: str
    queue: str
    payload: Any = None
    time_zone: str = "UTC"
    overlap: Overlap = "allow"
    catch_up: CatchUp = "latest"
    catch_up_limit: int = 0
    jitter: timedelta | None = None
    options: EnqueueOptions = field(default_factory=lambda: EnqueueOptions())

    def to_proto(self) -> sp.Schedule:
        s = sp.Schedule(
            name=self.name,
            time_zone=self.time_zone,
            template=job_request(self.queue, {} if self.payload is None else self.payload, **self.options),
            overlap=_OVERLAPS[self.overlap],
            catch_up=_CATCH_UPS[self.catch_up],
            catch_up_limit=self.catch_up_limit,
        )
        every = interval(self.when)
        if every is not None:
            s.interval.CopyFrom(duration(every))
        else:
            s.cron = self.when
        if self.jitter is not None:
            s.jitter.CopyFrom(duration(self.jitter))
        return s

    def upsert_request(self) -> adm.UpdateScheduleRequest:
        """Create the schedule, or set all of it but its pause (a declaration in code)."""
        timing = "interval" if interval(self.when) is not None else "cron"
        req = adm.UpdateScheduleRequest(schedule=self.to_proto(), allow_missing=True)
        req.update_mask.paths.extend([timing, *DECLARED])
        return req


class Schedules:
    """client.schedules: AdminService's schedule calls. Methods return spool.v1 Schedule messages."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, method: Any, request: Any, *, retry: bool = True) -> Any:
        c = self._client
        return c.call(method, request, retry=c.retry if retry else None, rpc_timeout=c.timeout)

    def create(self, spec: ScheduleSpec) -> Schedule:
        """Raises InvalidArgument (reason SCHEDULE_EXISTS) if the name is taken."""
        req = adm.CreateScheduleRequest(schedule=spec.to_proto())
        return self._call(self._client.admin.CreateSchedule, req, retry=False).schedule  # type: ignore[no-any-return]

    def upsert(self, spec: ScheduleSpec) -> Schedule:
        """Creates the schedule, or sets all of it but whether it is paused."""
        return self._call(self._client.admin.UpdateSchedule, spec.upsert_request()).schedule  # type: ignore[no-any-return]

    def get(self, name: str) -> Schedule:
        """The schedule with its next 5 fire times and its last fire."""
        return self._call(self._client.admin.GetSchedule, adm.GetScheduleRequest(name=name)).schedule  # type: ignore[no-any-return]

    def list(self, page_size: int = 100) -> Iterator[Schedule]:
        token = ""
        while True:
            req = adm.ListSchedulesRequest(page_size=page_size, page_token=token)
            page = self._call(self._client.admin.ListSchedules, req)
            yield from page.schedules
            token = page.next_page_token
            if not token:
                return

    def delete(self, name: str) -> None:
        self._call(self._client.admin.DeleteSchedule, adm.DeleteScheduleRequest(name=name))

    def pause(self, name: str) -> Schedule:
        return self._call(self._client.admin.PauseSchedule, adm.PauseScheduleRequest(name=name)).schedule  # type: ignore[no-any-return]

    def resume(self, name: str) -> Schedule:
        return self._call(self._client.admin.ResumeSchedule, adm.ResumeScheduleRequest(name=name)).schedule  # type: ignore[no-any-return]

    def trigger(self, name: str) -> tuple[Schedule, job_pb2.Job]:
        """Fires now (not retried: a retry would fire twice); returns the schedule and the new job."""
        out = self._call(self._client.admin.TriggerSchedule, adm.TriggerScheduleRequest(name=name), retry=False)
        return out.schedule, out.job


class AsyncSchedules:
    """The asyncio twin of Schedules, for AsyncClient (and the Worker's declarations)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _call(self, method: Any, request: Any, *, retry: bool = True) -> Any:
        c = self._client
        return await c.call(method, request, retry=c.retry if retry else None, rpc_timeout=c.timeout)

    async def create(self, spec: ScheduleSpec) -> Schedule:
        req = adm.CreateScheduleRequest(schedule=spec.to_proto())
        return (await self._call(self._client.admin.CreateSchedule, req, retry=False)).schedule  # type: ignore[no-any-return]

    async def upsert(self, spec: ScheduleSpec) -> Schedule:
        return (await self._call(self._client.admin.UpdateSchedule, spec.upsert_request())).schedule  # type: ignore[no-any-return]

    async def get(self, name: str) -> Schedule:
        req = adm.GetScheduleRequest(name=name)
        return (await self._call(self._client.admin.GetSchedule, req)).schedule  # type: ignore[no-any-return]

    async def list(self, page_size: int = 100) -> AsyncIterator[Schedule]:
        token = ""
        while True:
            req = adm.ListSchedulesRequest(page_size=page_size, page_token=token)
            page = await self._call(self._client.admin.ListSchedules, req)
            for s in page.schedules:
                yield s
            token = page.next_page_token
            if not token:
                return

    async def delete(self, name: str) -> None:
        await self._call(self._client.admin.DeleteSchedule, adm.DeleteScheduleRequest(name=name))

    async def pause(self, name: str) -> Schedule:
        req = adm.PauseScheduleRequest(name=name)
        return (await self._call(self._client.admin.PauseSchedule, req)).schedule  # type: ignore[no-any-return]

    async def resume(self, name: str) -> Schedule:
        req = adm.ResumeScheduleRequest(name=name)
        return (await self._call(self._client.admin.ResumeSchedule, req)).schedule  # type: ignore[no-any-return]

    async def trigger(self, name: str) -> tuple[Schedule, job_pb2.Job]:
        req = adm.TriggerScheduleRequest(name=name)
        out = await self._call(self._client.admin.TriggerSchedule, req, retry=False)
        return out.schedule, out.job


class Declarations:
    """The schedules a Worker's code declares, upserted when it starts: however many Workers
    declare the same schedule, the server keeps one (an upsert by name)."""

    def __init__(self) -> None:
        self.specs: builtins.dict[str, ScheduleSpec] = {}

    def add(self, spec: ScheduleSpec) -> None:
        if spec.name in self.specs and self.specs[spec.name] != spec:
            raise ValueError(f"schedule {spec.name!r} is declared twice, differently")
        self.specs[spec.name] = spec

    async def declare(self, client: AsyncClient) -> None:
        for spec in self.specs.values():
            await client.schedules.upsert(spec)
