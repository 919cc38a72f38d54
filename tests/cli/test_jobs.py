"""The job commands as people read them, and as jq reads them."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest

import spool
from spool.cli._text import span
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.cli.conftest import SPOOL, Spool, ack, lease, make_dead, nack


async def test_enqueue_then_get_as_a_table_and_as_json(cli: Spool) -> None:
    r = await cli("enqueue", "emails", '{"to": "ada"}', "--max-attempts", "3", "-H", "k=v", "--priority", "5")
    assert r.code == 0, r.err
    job_id = r.out.strip()
    r = await cli("get", job_id)
    assert r.code == 0 and "emails" in r.out and "ready" in r.out and "0 of 3" in r.out
    got = (await cli("get", job_id, "-o", "json")).json()
    assert got["payload"] == {"to": "ada"} and got["headers"] == {"k": "v"} and got["priority"] == 5
    created = (await cli("enqueue", "reports", "-", "--delay", "10m", "-o", "json", stdin='{"n": 1}')).json()
    assert created["payload"] == {"n": 1} and created["status"] == "scheduled"


async def test_json_is_made_for_jq(cli: Spool, client: spool.AsyncClient) -> None:
    job = await client.enqueue("q", {"n": 1})
    got = (await cli("get", job.id, "-o", "json")).json()
    # Zero and false fields are present, and typed.
    assert got["attempt"] == 0 and got["cancel_requested"] is False and got["requeues"] == 0
    assert got["attempts"] == [] and got["headers"] == {} and got["result"] is None
    (queue,) = (await cli("queues", "-o", "json")).json()
    stats = queue["stats"]
    # 64-bit counts are numbers, not strings; zero counts are there.
    assert stats["ready"] == 1 and stats["dead"] == 0 and stats["finished_last_minute"] == 0
    listed = (await cli("ls", "-o", "json")).json()
    assert isinstance(listed, list) and listed[0]["id"] == job.id


async def test_get_shows_times_with_their_zone_and_short_durations(cli: Spool, client: spool.AsyncClient) -> None:
    job = await client.enqueue("t", {})
    await ack(client, await lease(client, "t"))
    utc = (await cli("get", job.id)).out
    assert " UTC\n" in utc and "created " in utc
    paris = (await cli("get", job.id, TZ="Europe/Paris")).out
    assert " CET\n" in paris or " CEST\n" in paris
    # A sub-second attempt reads in ms, never as 0.003s.
    (row,) = [line for line in utc.splitlines() if line.startswith("#1")]
    assert "ms" in row and "0.0" not in row


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (4.2, "4.2s"), (30, "30s"), (62.733, "1m02s"), (63, "1m03s"), (7500, "2h05m"), (277200, "3d05h")],
)
def test_durations_read_like_1m03s(seconds: float, text: str) -> None:
    assert span(timedelta(seconds=seconds)) == text


async def test_a_succeeded_job_has_no_last_error_and_verbose_shows_tracebacks(
    cli: Spool, client: spool.AsyncClient
) -> None:
    job = await client.enqueue("v", {}, max_attempts=2)
    await nack(client, await lease(client, "v"), details="Traceback (most recent call last):\n  boom")
    leased = await lease(client, "v")
    await client.call(
        client.stub.Heartbeat,
        qs.HeartbeatRequest(job_id=job.id, lease_token=leased.lease_token, checkpoint=b'{"page": 3}'),
    )
    await ack(client, leased, b'{"sent": true}')
    plain = (await cli("get", job.id)).out
    assert "last error" not in plain and "succeeded" in plain and "Timeout: slow" in plain  # in the timeline
    assert "Traceback" not in plain and "checkpoint" not in plain
    verbose = (await cli("get", job.id, "--verbose")).out
    assert re.search(r'checkpoint +\{"page": 3\}', verbose)
    assert "attempt #1 (lease" in verbose and "Traceback (most recent call last):\n  boom" in verbose


async def test_requeues_show_as_boundaries_in_the_timeline(cli: Spool, client: spool.AsyncClient) -> None:
    (job_id,) = await make_dead(client, "rq", 1)
    for _ in range(2):
        await client.requeue(job_id)
        await nack(client, await lease(client, "rq"), retryable=False)
    out = (await cli("get", job_id)).out
    rows = [line.split()[0] for line in out.split("attempts:")[1].strip().splitlines()[1:]]
    assert rows == ["#1", "requeued", "#1", "requeued", "#1"]
    assert "requeued 2x" in out


async def test_cancel_of_a_running_job_says_cancel_requested(cli: Spool, client: spool.AsyncClient) -> None:
    running = await client.enqueue("c", {})
    await lease(client, "c")
    pending = await client.enqueue("c", {})
    r = await cli("cancel", running.id, pending.id, "999999")
    assert r.code == 3
    lines = r.out.splitlines()
    assert lines[0].startswith(f"{running.id}  cancel requested") and lines[1] == f"{pending.id}  cancelled"
    assert r.err == "spool: job 999999: job_id: job 999999 not found (JOB_NOT_FOUND)\n"
    r = await cli("requeue", pending.id)
    assert r.code == 0 and r.out == f"{pending.id}  requeued (ready)\n"


async def test_requeue_by_filter_asks_first_then_shows_progress(cli: Spool, client: spool.AsyncClient) -> None:
    dead_ids = await make_dead(client, "bulk", 3)
    r = await cli("requeue", "--queue", "bulk", "--state", "dead", stdin="n\n")
    assert r.code == 1 and "Requeue 3 job(s)?" in r.err and "aborted" in r.err
    assert [(await client.get(i)).state for i in dead_ids] == [job_pb2.Job.STATE_DEAD] * 3
    r = await cli("requeue", "--queue", "bulk", "--state", "dead", "--yes")
    assert r.code == 0 and "3/3" in r.err and "requeued 3 job(s)" in r.out
    assert [(await client.get(i)).state for i in dead_ids] == [job_pb2.Job.STATE_PENDING] * 3


@pytest.mark.parametrize(("finish", "exit_code"), [("ack", 0), ("cancel", 4)])
async def test_watch_follows_until_the_job_finishes(
    cli: Spool, client: spool.AsyncClient, finish: str, exit_code: int
) -> None:
    job = await client.enqueue("watch", {})
    proc = await asyncio.create_subprocess_exec(
        str(SPOOL),
        "watch",
        job.id,
        "-o",
        "json",
        env=cli.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert first["state"] == "STATE_PENDING"
    leased = await lease(client, "watch")
    if finish == "ack":
        await ack(client, leased)
    else:
        await client.cancel(job.id)
        await nack(client, leased)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == exit_code, err
    states = [json.loads(line)["status"] for line in out.decode().splitlines()]
    assert states[-1] == ("succeeded" if finish == "ack" else "cancelled")
