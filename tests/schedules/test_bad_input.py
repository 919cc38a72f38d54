"""Every bad schedule request is refused with INVALID_ARGUMENT naming the field, and writes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from tests.helpers import expect_error
from tests.schedules.support import duration, schedule_message

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def template(**fields: Any) -> qs.EnqueueRequest:
    fields.setdefault("queue", "q")
    fields.setdefault("payload", b"{}")
    return qs.EnqueueRequest(**fields)


BAD_SCHEDULES: list[tuple[str, sp.Schedule, str]] = [
    ("4 cron fields", schedule_message("s", cron="* * * *"), "schedule.cron"),
    ("8 cron fields", schedule_message("s", cron="* * * * * * * *"), "schedule.cron"),
    ("minute 61", schedule_message("s", cron="61 * * * *"), "schedule.cron"),
    ("hour 24", schedule_message("s", cron="0 24 * * *"), "schedule.cron"),
    ("a date that never comes", schedule_message("s", cron="0 0 31 2 *"), "schedule.cron"),
    ("an empty cron", schedule_message("s", cron=""), "schedule.cron"),
    ("no timing", schedule_message("s"), "schedule.cron"),
    ("a NUL in the cron", schedule_message("s", cron="0 3 * * *\x00"), "schedule.cron"),
    (
        "an unknown time zone",
        schedule_message("s", cron="0 3 * * *", time_zone="Europe/Atlantis"),
        "schedule.time_zone",
    ),
    (
        "a path as time zone",
        schedule_message("s", cron="0 3 * * *", time_zone="../../etc/passwd"),
        "schedule.time_zone",
    ),
    ("an interval of 0", sp.Schedule(name="s", interval=Duration(), template=template()), "schedule.interval"),
    (
        "a negative interval",
        sp.Schedule(name="s", interval=Duration(seconds=-30), template=template()),
        "schedule.interval",
    ),
    (
        "an interval under 1 s",
        sp.Schedule(name="s", interval=Duration(nanos=500_000_000), template=template()),
        "schedule.interval",
    ),
    ("an interval over 366 days", schedule_message("s", every=367 * 86400), "schedule.interval"),
    ("an empty name", schedule_message("", every=60), "schedule.name"),
    ("a name of 1,000 characters", schedule_message("n" * 1000, every=60), "schedule.name"),
    ("a name with a space", schedule_message("two words", every=60), "schedule.name"),
    ("no template", sp.Schedule(name="s", cron="@daily"), "schedule.template"),
    (
        "a template without a queue",
        sp.Schedule(name="s", cron="@daily", template=template(queue="")),
        "schedule.template.queue",
    ),
    (
        "max_attempts 0",
        sp.Schedule(name="s", cron="@daily", template=template(max_attempts=0)),
        "schedule.template.max_attempts",
    ),
    (
        "max_attempts 101",
        sp.Schedule(name="s", cron="@daily", template=template(max_attempts=101)),
        "schedule.template.max_attempts",
    ),
    (
        "priority 40000",
        sp.Schedule(name="s", cron="@daily", template=template(priority=40000)),
        "schedule.template.priority",
    ),
    (
        "a payload that is not JSON",
        sp.Schedule(name="s", cron="@daily", template=template(payload=b"{nope")),
        "schedule.template.payload",
    ),
    (
        "a limit without a key",
        sp.Schedule(name="s", cron="@daily", template=template(concurrency_limit=3)),
        "schedule.template.concurrency_limit",
    ),
    (
        "a backoff multiplier of 1000",
        sp.Schedule(name="s", cron="@daily", template=template(backoff=job_pb2.BackoffPolicy(multiplier=1000))),
        "schedule.template.backoff.multiplier",
    ),
    (
        "an idempotency key",
        sp.Schedule(name="s", cron="@daily", template=template(idempotency_key="k")),
        "schedule.template.idempotency_key",
    ),
    ("a delay", sp.Schedule(name="s", cron="@daily", template=template(delay=duration(5))), "schedule.template.delay"),
    (
        "the fire-time header",
        sp.Schedule(name="s", cron="@daily", template=template(headers={"spool-fire-time": "x"})),
        "schedule.template.headers['spool-fire-time']",
    ),
    ("an unknown overlap", schedule_message("s", every=60, overlap=7), "schedule.overlap"),
    ("an unknown catch-up", schedule_message("s", every=60, catch_up=9), "schedule.catch_up"),
    ("a catch-up limit of 1001", schedule_message("s", every=60, catch_up_limit=1001), "schedule.catch_up_limit"),
    ("a negative catch-up limit", schedule_message("s", every=60, catch_up_limit=-1), "schedule.catch_up_limit"),
    ("a negative jitter", schedule_message("s", every=60, jitter=Duration(seconds=-1)), "schedule.jitter"),
    ("a jitter over a day", schedule_message("s", every=60, jitter=duration(86401)), "schedule.jitter"),
]


async def rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT * FROM spool.schedules ORDER BY name"))


@pytest.mark.parametrize(("case", "schedule", "field"), BAD_SCHEDULES, ids=[c for c, _, _ in BAD_SCHEDULES])
async def test_create_refuses(
    admin: AdminServiceStub, db: asyncpg.Connection, case: str, schedule: sp.Schedule, field: str
) -> None:
    await expect_error(
        admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule)), INVALID, "INVALID_ARGUMENT", field
    )
    assert await rows(db) == []


@pytest.mark.parametrize(("case", "schedule", "field"), BAD_SCHEDULES, ids=[c for c, _, _ in BAD_SCHEDULES])
async def test_upsert_refuses(
    admin: AdminServiceStub, db: asyncpg.Connection, case: str, schedule: sp.Schedule, field: str
) -> None:
    req = adm.UpdateScheduleRequest(schedule=schedule, allow_missing=True)
    if case in ("no timing", "no template"):  # without a mask, an unset field is not part of the update
        req.update_mask.paths.extend(["cron", "template"])
    await expect_error(admin.UpdateSchedule(req), INVALID, "INVALID_ARGUMENT", field)
    assert await rows(db) == []


async def test_a_taken_name_is_refused_and_the_schedule_left_as_it_was(
    admin: AdminServiceStub, db: asyncpg.Connection
) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("taken", every=60)))
    before = await rows(db)
    again = adm.CreateScheduleRequest(schedule=schedule_message("taken", cron="0 3 * * *"))
    await expect_error(admin.CreateSchedule(again), INVALID, "SCHEDULE_EXISTS", "schedule.name")
    assert await rows(db) == before


async def test_bad_updates_change_nothing(admin: AdminServiceStub, db: asyncpg.Connection) -> None:
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule_message("u", every=60)))
    before = await rows(db)
    cases = [
        (adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u")), "update_mask"),
        (
            adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u"), update_mask=FieldMask(paths=["paused"])),
            "update_mask.paths[0]",
        ),
        (adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u", cron="61 * * * *")), "schedule.cron"),
        (adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u", time_zone="Nowhere/Else")), "schedule.time_zone"),
        (
            adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u"), update_mask=FieldMask(paths=["template"])),
            "schedule.template",
        ),
        (
            adm.UpdateScheduleRequest(schedule=sp.Schedule(name="u"), update_mask=FieldMask(paths=["interval"])),
            "schedule.cron",
        ),
    ]
    for req, field in cases:
        await expect_error(admin.UpdateSchedule(req), INVALID, "INVALID_ARGUMENT", field)
    assert await rows(db) == before


async def test_bad_names_sizes_and_tokens(admin: AdminServiceStub) -> None:
    for call, field in [
        (admin.GetSchedule(adm.GetScheduleRequest(name="")), "name"),
        (admin.DeleteSchedule(adm.DeleteScheduleRequest(name="x" * 1000)), "name"),
        (admin.TriggerSchedule(adm.TriggerScheduleRequest(name="a b")), "name"),
        (admin.ListSchedules(adm.ListSchedulesRequest(page_size=1001)), "page_size"),
        (admin.ListSchedules(adm.ListSchedulesRequest(page_size=-1)), "page_size"),
        (admin.ListSchedules(adm.ListSchedulesRequest(page_token="!!!")), "page_token"),
        (admin.ListSchedules(adm.ListSchedulesRequest(page_token="c2NoZWQ")), "page_token"),
    ]:
        await expect_error(call, INVALID, "INVALID_ARGUMENT", field)
