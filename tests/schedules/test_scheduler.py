"""The scheduler loop, run by hand against an injected clock and a real database: one job per
fire time however often and however many schedulers run, the catch-up policies after a stop,
overlap skip, pause, jitter, and a template that no longer passes."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import asyncpg

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spoold.app import App
from spoold.config import Limits
from spoold.store.database import create_pool
from tests.api.support import lease_one
from tests.schedules.support import T0, Clock, create, duration, fired_jobs, scheduler, stamp, store

MINUTE = {"cron": "* * * * *"}


async def test_each_fire_time_gets_one_job_with_its_fire_time_in_a_header(app: App, db: asyncpg.Connection) -> None:
    clock = Clock()
    await create(app, clock, "every-minute", **MINUTE)
    run = scheduler(app, clock)
    assert await run.run_once() == 0  # nothing due before 00:01
    clock.set(minutes=1, seconds=0.4)
    assert await run.run_once() == 1
    assert await run.run_once() == 0  # the same fire time again: nothing
    clock.set(minutes=2, seconds=0.2)
    assert await run.run_once() == 1
    jobs = await fired_jobs(db, "every-minute")
    assert [j["fire_time"] for j in jobs] == [stamp(T0 + timedelta(minutes=1)), stamp(T0 + timedelta(minutes=2))]
    assert jobs[0]["idempotency_key"] == f"spool-schedule:every-minute@{stamp(T0 + timedelta(minutes=1))}"
    assert [j["state"] for j in jobs] == ["pending", "pending"]
    last = (await store(app).get("every-minute")).last_fire
    assert last is not None and last.job_id == jobs[1]["id"] and last.fire_time == T0 + timedelta(minutes=2)


async def test_schedulers_racing_on_separate_connections_make_one_job_per_fire_time(
    app: App, db: asyncpg.Connection, db_url: str
) -> None:
    clock = Clock()
    await create(app, clock, "raced", every=1)
    other = await create_pool(db_url, 2, 4)
    try:
        runs = [scheduler(app, clock), scheduler(app, clock, pool=other), scheduler(app, clock, pool=other)]
        for tick in range(1, 31):
            clock.set(seconds=tick + 0.01 * (tick % 7))
            await asyncio.gather(*(r.run_once() for r in runs))
    finally:
        await other.close()
    counts = Counter(j["fire_time"] for j in await fired_jobs(db, "raced"))
    assert counts == Counter({stamp(T0 + timedelta(seconds=s)): 1 for s in range(1, 31)})


async def _after_a_minute_stop(app: App, db: asyncpg.Connection, catch_up: int) -> list[str]:
    clock = Clock()
    name = f"stopped-{catch_up}"
    await create(app, clock, name, every=10, catch_up=catch_up)
    run = scheduler(app, clock, grace=1)
    clock.set(seconds=10.5)
    assert await run.run_once() == 1  # 00:10 fires on time
    clock.set(seconds=75.5)  # back after a minute: 00:20 ... 00:70 were missed
    await run.run_once()
    clock.set(seconds=80.2)
    await run.run_once()  # on time again
    return [j["fire_time"] for j in await fired_jobs(db, name)]


def _at(*seconds: int) -> list[str]:
    return [stamp(T0 + timedelta(seconds=s)) for s in seconds]


async def test_after_a_one_minute_stop_latest_fires_once_for_the_missed_period(
    app: App, db: asyncpg.Connection
) -> None:
    assert await _after_a_minute_stop(app, db, sp.Schedule.CATCH_UP_LATEST) == _at(10, 70, 80)


async def test_after_a_one_minute_stop_all_fires_every_missed_time(app: App, db: asyncpg.Connection) -> None:
    assert await _after_a_minute_stop(app, db, sp.Schedule.CATCH_UP_ALL) == _at(10, 20, 30, 40, 50, 60, 70, 80)


async def test_after_a_one_minute_stop_none_goes_on_from_the_next_fire_time(app: App, db: asyncpg.Connection) -> None:
    assert await _after_a_minute_stop(app, db, sp.Schedule.CATCH_UP_NONE) == _at(10, 80)


async def test_catch_up_all_is_bounded(app: App, db: asyncpg.Connection) -> None:
    clock = Clock()
    await create(app, clock, "bounded", every=1, catch_up=sp.Schedule.CATCH_UP_ALL, catch_up_limit=5)
    clock.set(hours=1)
    await scheduler(app, clock, grace=0).run_once()
    # 01:00:00 is on time (the grace is 0 and the clock says 01:00:00); the 5 before it are caught up.
    assert [j["fire_time"] for j in await fired_jobs(db, "bounded")] == _at(*range(3595, 3601))


async def test_skip_skips_while_the_previous_run_is_pending_or_running(
    app: App, db: asyncpg.Connection, stub: object
) -> None:
    clock = Clock()
    await create(app, clock, "one-at-a-time", queue="skipq", overlap=sp.Schedule.OVERLAP_SKIP, **MINUTE)
    run = scheduler(app, clock)
    clock.set(minutes=1)
    await run.run_once()  # 00:01 enqueues
    clock.set(minutes=2)
    await run.run_once()  # 00:02: the 00:01 job is pending: skipped
    leased = await lease_one(stub, "skipq")  # type: ignore[arg-type]
    clock.set(minutes=3)
    await run.run_once()  # 00:03: it is running: skipped
    last = (await store(app).get("one-at-a-time")).last_fire
    assert last is not None and last.outcome.value == "skipped" and last.fire_time == T0 + timedelta(minutes=3)
    await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token))  # type: ignore[attr-defined]
    clock.set(minutes=4)
    await run.run_once()  # finished: 00:04 enqueues
    assert [j["fire_time"] for j in await fired_jobs(db, "one-at-a-time")] == _at(60, 240)
    outcomes = await db.fetch("SELECT outcome FROM spool.schedule_fires ORDER BY fire_time")
    assert [r["outcome"] for r in outcomes] == ["enqueued", "skipped", "skipped", "enqueued"]


async def test_allow_enqueues_while_the_previous_run_is_pending(app: App, db: asyncpg.Connection) -> None:
    clock = Clock()
    await create(app, clock, "overlapping", **MINUTE)
    run = scheduler(app, clock)
    for minute in (1, 2, 3):
        clock.set(minutes=minute)
        await run.run_once()
    assert len(await fired_jobs(db, "overlapping")) == 3


async def test_a_paused_schedule_does_not_fire_and_resumes_without_catching_up(
    app: App, db: asyncpg.Connection
) -> None:
    clock = Clock()
    await create(app, clock, "pausable", catch_up=sp.Schedule.CATCH_UP_ALL, **MINUTE)
    run = scheduler(app, clock)
    await store(app).set_paused("pausable", True, clock())
    clock.set(minutes=5)
    assert await run.run_once() == 0
    await store(app).set_paused("pausable", False, clock())
    assert await run.run_once() == 0
    clock.set(minutes=6)
    await run.run_once()
    assert [j["fire_time"] for j in await fired_jobs(db, "pausable")] == _at(360)


async def test_jitter_spreads_run_at_after_the_fire_time(app: App, db: asyncpg.Connection) -> None:
    clock = Clock()
    await create(app, clock, "jittery", every=60, jitter=duration(30))
    run = scheduler(app, clock)
    for minute in range(1, 6):
        clock.set(minutes=minute)
        await run.run_once()
    jobs = await fired_jobs(db, "jittery")
    delays = [(j["run_at"] - (T0 + timedelta(minutes=i + 1))).total_seconds() for i, j in enumerate(jobs)]
    assert len(delays) == 5 and all(0 <= d <= 30 for d in delays) and len(set(delays)) == 5


async def test_a_template_that_no_longer_passes_records_a_failed_fire_and_the_others_go_on(
    app: App, db: asyncpg.Connection
) -> None:
    clock = Clock()
    await create(app, clock, "big", **MINUTE)
    await create(app, clock, "fine", template=qs.EnqueueRequest(queue="sched", payload=b"1"), **MINUTE)
    # The server restarted with a payload limit below the template's payload.
    app.settings = replace(app.settings, limits=Limits(max_payload_bytes=2))
    run = scheduler(app, clock)
    clock.set(minutes=1)
    await run.run_once()
    assert await fired_jobs(db, "big") == [] and len(await fired_jobs(db, "fine")) == 1
    fire = (await store(app).get("big")).last_fire
    assert fire is not None and fire.outcome.value == "failed" and "payload" in (fire.error or "")
    assert (await store(app).get("big")).next_fire_at == T0 + timedelta(minutes=2)
