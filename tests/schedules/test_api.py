"""The schedule RPCs over real gRPC: create, get (next fire times, last fire), list in pages,
update (with a mask, or as an upsert from many callers at once), pause, resume, trigger, delete."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spoold.schedules import Timing
from tests.helpers import expect_error
from tests.schedules.support import duration, schedule_message


async def test_create_then_get_shows_the_settings_and_the_next_five_fire_times(admin: AdminServiceStub) -> None:
    made = await admin.CreateSchedule(
        adm.CreateScheduleRequest(
            schedule=schedule_message(
                "nightly", cron="0 3 * * *", time_zone="Europe/Berlin", overlap=sp.Schedule.OVERLAP_SKIP
            )
        )
    )
    got = (await admin.GetSchedule(adm.GetScheduleRequest(name="nightly"))).schedule
    assert got == made.schedule
    assert got.cron == "0 3 * * *" and got.time_zone == "Europe/Berlin" and not got.paused
    assert got.overlap == sp.Schedule.OVERLAP_SKIP and got.catch_up == sp.Schedule.CATCH_UP_LATEST
    assert got.catch_up_limit == 100 and got.template.queue == "sched"
    fires = [t.ToDatetime(tzinfo=UTC) for t in got.next_fire_times]
    expected = Timing(cron="0 3 * * *", time_zone="Europe/Berlin").after(datetime.now(UTC) - timedelta(seconds=5), 6)
    assert fires in (expected[:5], expected[1:])
    assert not got.HasField("last_fire")


async def test_trigger_fires_now_and_get_shows_the_last_fire_with_its_job(
    admin: AdminServiceStub, stub: object, db: asyncpg.Connection
) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("manual", cron="@yearly")))
    await admin.PauseSchedule(adm.PauseScheduleRequest(name="manual"))  # trigger fires a paused one too
    fired = await admin.TriggerSchedule(adm.TriggerScheduleRequest(name="manual"))
    job = fired.job
    assert job.queue == "sched" and job.state == job_pb2.Job.STATE_PENDING
    assert job.headers["spool-schedule"] == "manual" and job.headers["spool-fire-time"].endswith("Z")
    assert json.loads(job.payload) == {"n": 1}
    last = fired.schedule.last_fire
    assert last.job_id == job.id and last.triggered and last.outcome == sp.ScheduleFire.OUTCOME_ENQUEUED
    assert last.job_state == job_pb2.Job.STATE_PENDING
    await stub.CancelJob(qs.CancelJobRequest(job_id=job.id))  # type: ignore[attr-defined]
    again = (await admin.GetSchedule(adm.GetScheduleRequest(name="manual"))).schedule
    assert again.last_fire.job_state == job_pb2.Job.STATE_CANCELLED


async def test_pause_and_resume_are_idempotent(admin: AdminServiceStub) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("p", every=60)))
    for _ in range(2):
        paused = (await admin.PauseSchedule(adm.PauseScheduleRequest(name="p"))).schedule
        assert paused.paused and len(paused.next_fire_times) == 5
    for _ in range(2):
        assert not (await admin.ResumeSchedule(adm.ResumeScheduleRequest(name="p"))).schedule.paused


async def test_list_pages_through_every_schedule_by_name(admin: AdminServiceStub) -> None:
    names = [f"s{i:02d}" for i in range(7)]
    for name in reversed(names):
        await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message(name, every=3600)))
    seen, token = [], ""
    while True:
        page = await admin.ListSchedules(adm.ListSchedulesRequest(page_size=3, page_token=token))
        seen += [s.name for s in page.schedules]
        token = page.next_page_token
        if not token:
            break
    assert seen == names


async def test_update_with_a_mask_changes_only_the_named_fields(admin: AdminServiceStub) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("m", every=60, jitter=duration(5))))
    changed = await admin.UpdateSchedule(
        adm.UpdateScheduleRequest(
            schedule=sp.Schedule(name="m", cron="*/5 * * * *", jitter=duration(99)),
            update_mask=FieldMask(paths=["cron"]),
        )
    )
    s = changed.schedule
    assert s.cron == "*/5 * * * *" and not s.HasField("interval") and s.jitter.seconds == 5
    assert all(t.ToDatetime().minute % 5 == 0 for t in s.next_fire_times)
    cleared = await admin.UpdateSchedule(
        adm.UpdateScheduleRequest(schedule=sp.Schedule(name="m"), update_mask=FieldMask(paths=["jitter"]))
    )
    assert cleared.schedule.jitter.seconds == 0 and cleared.schedule.cron == "*/5 * * * *"


async def test_upserts_from_many_callers_make_one_schedule_and_keep_its_next_fire_time(
    admin: AdminServiceStub, db: asyncpg.Connection
) -> None:
    declared = adm.UpdateScheduleRequest(
        schedule=schedule_message("declared", cron="0 3 * * *"),
        update_mask=FieldMask(paths=["cron", "time_zone", "template", "overlap", "catch_up", "jitter"]),
        allow_missing=True,
    )
    answers = await asyncio.gather(*(admin.UpdateSchedule(declared) for _ in range(8)))
    assert len({a.schedule.created_at.ToDatetime() for a in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM spool.schedules") == 1
    # An operator paused it; a Worker redeclaring it at start-up neither resumes nor moves it.
    await db.execute("UPDATE spool.schedules SET next_fire_at = next_fire_at - interval '1 day'")
    before = await db.fetchval("SELECT next_fire_at FROM spool.schedules")
    await admin.PauseSchedule(adm.PauseScheduleRequest(name="declared"))
    again = (await admin.UpdateSchedule(declared)).schedule
    assert again.paused and await db.fetchval("SELECT next_fire_at FROM spool.schedules") == before


async def test_delete_removes_the_schedule_and_its_history_but_not_its_jobs(
    admin: AdminServiceStub, db: asyncpg.Connection
) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("gone", every=60)))
    await admin.TriggerSchedule(adm.TriggerScheduleRequest(name="gone"))
    await admin.DeleteSchedule(adm.DeleteScheduleRequest(name="gone"))
    assert await db.fetchval("SELECT count(*) FROM spool.schedule_fires") == 0
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 1
    for call in (
        admin.GetSchedule(adm.GetScheduleRequest(name="gone")),
        admin.DeleteSchedule(adm.DeleteScheduleRequest(name="gone")),
        admin.TriggerSchedule(adm.TriggerScheduleRequest(name="gone")),
        admin.PauseSchedule(adm.PauseScheduleRequest(name="gone")),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, "SCHEDULE_NOT_FOUND", "name")
    await expect_error(
        admin.UpdateSchedule(adm.UpdateScheduleRequest(schedule=schedule_message("gone", every=5))),
        grpc.StatusCode.NOT_FOUND,
        "SCHEDULE_NOT_FOUND",
        "schedule.name",
    )
