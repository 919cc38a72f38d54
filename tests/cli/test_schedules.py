"""The schedule commands against a live server: create, ls, get, pause, resume, trigger, rm, and
what a bad schedule gets told."""

from __future__ import annotations

import json

import spool
from tests.cli.conftest import Spool


async def test_create_list_get_trigger_pause_resume_and_remove(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli(
        "schedules", "create", "nightly", "30 2 * * *", '{"full": true}', "--queue", "sync",
        "--tz", "Europe/Berlin", "--overlap", "skip", "--catch-up", "all", "--catch-up-limit", "5",
        "--max-attempts", "3", "-H", "team=data",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "30 2 * * * (Europe/Berlin)" in r.out and "all (at most 5)" in r.out and "next fires:" in r.out
    r = await cli("schedules", "create", "pings", "every 30s", "--queue", "pings")
    assert r.code == 0 and "every 30s" in r.out, r.err

    listed = await cli("schedules")
    header, *rows = listed.out.splitlines()
    assert header.split()[:3] == ["SCHEDULE", "WHEN", "QUEUE"]
    assert [row.split()[0] for row in rows] == ["nightly", "pings"] and "never" in rows[0]
    as_json = (await cli("schedules", "ls", "-o", "json")).json()
    assert [s["name"] for s in as_json] == ["nightly", "pings"] and as_json[1]["interval"] == "30s"
    assert len(as_json[0]["next_fire_times"]) == 5

    fired = await cli("schedules", "trigger", "nightly")
    job = await client.get(fired.out.strip())
    assert json.loads(job.payload) == {"full": True} and job.max_attempts == 3
    assert job.headers["team"] == "data" and job.headers["spool-schedule"] == "nightly"
    shown = await cli("schedules", "get", "nightly")
    assert f"job {job.id} pending" in shown.out and "(triggered)" in shown.out

    assert (await cli("schedules", "pause", "nightly")).out.startswith("nightly paused")
    assert "next fires (if resumed now):" in (await cli("schedules", "get", "nightly")).out
    assert (await cli("schedules", "resume", "nightly")).out.startswith("nightly resumed: next fire in ")
    assert (await cli("schedules", "rm", "pings")).out.strip() == "deleted schedule pings"
    assert [s.name async for s in client.schedules.list()] == ["nightly"]


async def test_bad_schedules_get_one_line_naming_the_field(cli: Spool) -> None:
    r = await cli("schedules", "create", "bad", "61 * * * *", "--queue", "q")
    assert r.code == 1 and r.err.count("\n") == 1 and "schedule.cron" in r.err and "bad minute" in r.err
    r = await cli("schedules", "create", "bad", "@daily", "--queue", "q", "--tz", "Mars/Base")
    assert r.code == 1 and "schedule.time_zone" in r.err
    r = await cli("schedules", "create", "bad", "every 0s", "--queue", "q")
    assert r.code == 1 and "schedule.interval" in r.err
    r = await cli("schedules", "get", "missing")
    assert r.code == 3 and "'missing' not found" in r.err
    assert (await cli("schedules")).out.strip() == "no schedules"
