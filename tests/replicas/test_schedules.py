"""Two real `spoold` processes on one database, each running its scheduler every 0.2 s: a schedule
firing every second for 10 s makes exactly one job per fire time, with no fire time left out."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import schedule_pb2 as sp
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from tests.conftest import wait_until
from tests.replicas.test_replicas import Replica, processes, replicas
from tests.schedules.support import fired_jobs, schedule_message

__all__ = ["processes", "replicas"]


@pytest.fixture(autouse=True)
def fast_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each replica looks for due schedules every 0.2 s (set before `processes` starts them)."""
    monkeypatch.setenv("SPOOL_SCHEDULER_INTERVAL", "0.2")


async def test_an_every_second_schedule_on_two_replicas_makes_one_job_per_fire_time(
    replicas: list[Replica], db: asyncpg.Connection
) -> None:
    admin = AdminServiceStub(replicas[0].channel)
    schedule = schedule_message("ticks", queue="ticks", every=1, catch_up=sp.Schedule.CATCH_UP_ALL)
    await admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule))

    async def ten_seconds_fired() -> bool:
        return len(await fired_jobs(db, "ticks")) >= 11

    await wait_until(ten_seconds_fired, within=60, interval=0.25)
    await AdminServiceStub(replicas[1].channel).PauseSchedule(adm.PauseScheduleRequest(name="ticks"))
    counts = Counter(j["fire_time"] for j in await fired_jobs(db, "ticks"))
    assert set(counts.values()) == {1}, counts
    times = sorted(datetime.fromisoformat(t) for t in counts)
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]  # none left out
    assert await db.fetchval("SELECT count(*) FROM spool.schedule_fires WHERE outcome = 'enqueued'") == len(times)
