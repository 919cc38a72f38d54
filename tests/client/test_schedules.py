"""Schedules from Python: declared in a Worker's code and upserted when it starts (safely from
many Workers at once), and managed with client.schedules."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import spool
from spool.v1 import job_pb2
from spool.v1 import schedule_pb2 as sp
from spoold.app import App
from tests.client.conftest import serving
from tests.conftest import wait_until


def worker_with_declarations(client: spool.AsyncClient, seen: list[str], cron: str = "0 3 * * *") -> spool.Worker:
    worker = spool.Worker(client, concurrency=2, poll_wait=timedelta(milliseconds=200))

    @worker.schedule(cron, queue="nightly-sync", time_zone="Europe/Berlin", overlap="skip", payload={"full": True})
    async def sync(job: spool.ActiveJob) -> dict[str, bool]:
        seen.append(job.headers["spool-fire-time"])
        return {"synced": job.json()["full"]}

    worker.schedule("every 30s", queue="pings", name="pinger", catch_up="none", max_attempts=3)
    return worker


async def test_workers_declare_their_schedules_at_start_up_and_the_decorated_function_handles_them(
    client: spool.AsyncClient,
) -> None:
    seen: list[str] = []
    workers = [worker_with_declarations(client, seen) for _ in range(4)]
    async with serving(workers[0]), serving(workers[1]), serving(workers[2]), serving(workers[3]):
        await wait_until(lambda: _count_is(client, 2), within=10)
        found = [s async for s in client.schedules.list()]
        assert [s.name for s in found] == ["nightly-sync", "pinger"]
        nightly, pinger = found
        assert nightly.cron == "0 3 * * *" and nightly.time_zone == "Europe/Berlin"
        assert nightly.overlap == sp.Schedule.OVERLAP_SKIP and nightly.template.queue == "nightly-sync"
        assert pinger.interval.seconds == 30 and pinger.catch_up == sp.Schedule.CATCH_UP_NONE
        assert pinger.template.max_attempts == 3 and not pinger.template.idempotency_key
        _, job = await client.schedules.trigger("nightly-sync")
        done = await wait_for_state(client, job.id, job_pb2.Job.STATE_SUCCEEDED)
        assert done.result == b'{"synced":true}' and seen == [job.headers["spool-fire-time"]]


async def _count_is(client: spool.AsyncClient, n: int) -> bool:
    return len([s async for s in client.schedules.list()]) == n


async def wait_for_state(client: spool.AsyncClient, job_id: str, state: int) -> job_pb2.Job:
    for _ in range(500):
        job = await client.get(job_id)
        if job.state == state:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {state}")


async def test_a_redeclaration_updates_the_timing_but_keeps_an_operators_pause(client: spool.AsyncClient) -> None:
    async with serving(worker_with_declarations(client, [])):
        await wait_until(lambda: _exists(client, "nightly-sync"), within=10)
    await client.schedules.pause("nightly-sync")
    async with serving(worker_with_declarations(client, [], cron="0 4 * * *")):
        await wait_until(lambda: _cron_is(client, "0 4 * * *"), within=10)
    again = await client.schedules.get("nightly-sync")
    assert again.paused


async def _exists(client: spool.AsyncClient, name: str) -> bool:
    return name in [s.name async for s in client.schedules.list()]


async def _cron_is(client: spool.AsyncClient, cron: str) -> bool:
    return (await client.schedules.get("nightly-sync")).cron == cron


async def test_a_bad_declaration_stops_the_worker_at_start_up(client: spool.AsyncClient) -> None:
    worker = spool.Worker(client)
    worker.schedule("61 * * * *", queue="q")(lambda job: None)
    with pytest.raises(spool.InvalidArgument, match=r"schedule\.cron"):
        await asyncio.wait_for(worker.serve(), 30)


def test_declaring_one_name_twice_differently_is_refused(client: spool.AsyncClient) -> None:
    worker = spool.Worker(client)
    worker.schedule("@daily", queue="q")
    worker.schedule("@daily", queue="q")  # the same again is fine
    with pytest.raises(ValueError, match="declared twice"):
        worker.schedule("@hourly", queue="q")


async def test_the_blocking_client_manages_schedules(app: App) -> None:
    def script() -> None:
        spec = spool.ScheduleSpec(
            "reports", "every 1h", queue="reports", payload={"kind": "hourly"}, jitter=timedelta(minutes=5)
        )
        with spool.Client(f"127.0.0.1:{app.port}") as c:
            made = c.schedules.create(spec)
            assert made.interval.seconds == 3600 and made.jitter.seconds == 300
            with pytest.raises(spool.InvalidArgument) as caught:
                c.schedules.create(spec)
            assert caught.value.reason == "SCHEDULE_EXISTS"
            assert c.schedules.upsert(spec).name == "reports"
            assert [s.name for s in c.schedules.list()] == ["reports"]
            c.schedules.delete("reports")
            with pytest.raises(spool.NotFound):
                c.schedules.get("reports")

    await asyncio.to_thread(script)
