"""The queue commands: no queue appears by mistake, and one made by mistake can be deleted."""

from __future__ import annotations

import re

import spool
from spool.v1 import job_pb2
from tests.cli.conftest import Spool, lease, make_dead


async def names(client: spool.AsyncClient) -> list[str]:
    return [q.name for q in await client.queues()]


async def test_pausing_an_unknown_queue_needs_create(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli("pause", "nosuchqueue")
    assert r.code == 3 and r.out == "" and r.err.count("\n") == 1
    assert "no queue 'nosuchqueue'" in r.err and "--create" in r.err
    assert await names(client) == []
    r = await cli("pause", "nosuchqueue", "--create")
    assert r.code == 0 and r.out.startswith("nosuchqueue paused")
    assert [(q.name, q.paused) for q in await client.queues()] == [("nosuchqueue", True)]
    r = await cli("resume", "typo")
    assert r.code == 3 and "'typo' not found" in r.err and await names(client) == ["nosuchqueue"]
    r = await cli("resume", "nosuchqueue", "-o", "json")
    assert r.json()["paused"] is False


async def test_queues_lists_and_shows_counts(cli: Spool, client: spool.AsyncClient) -> None:
    await client.enqueue("emails", {})
    await make_dead(client, "emails", 2)
    r = await cli("queues")
    header, row = r.out.splitlines()
    assert header.split()[:5] == ["QUEUE", "PAUSED", "READY", "THROTTLED", "SCHEDULED"]
    assert row.split()[:5] == ["emails", "no", "1", "0", "0"] and row.split()[7] == "2"
    shown = await cli("queues", "show", "emails")
    assert "1 ready" in shown.out and "2 dead" in shown.out and "max attempts" in shown.out
    # Every value starts in the same column, a backoff the queue leaves to the server included.
    columns = {m.start(2) - m.start() for m in re.finditer(r"^(\S.*?) {2,}(\S)", shown.out, re.M)}
    assert len(columns) == 1 and len(shown.out.splitlines()) == 13, shown.out
    assert re.search(r"^backoff +server default$", shown.out, re.M), shown.out


async def test_queues_set_says_when_it_creates_a_queue(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli("queues", "set", "emails", "--max-attempts", "5", "--backoff-initial", "2s")
    assert r.code == 0 and "created queue emails" in r.err
    job = await client.enqueue("emails", {})
    assert job.max_attempts == 5 and job.backoff.initial_interval.seconds == 2
    r = await cli("queues", "set", "emails", "--lease-duration", "2m")
    assert r.code == 0 and "created" not in r.err
    assert (await client.queue("emails")).defaults.max_attempts == 5  # kept
    r = await cli("queues", "set", "emails")
    assert r.code == 2 and "give at least one setting" in r.err


async def test_queues_delete(cli: Spool, client: spool.AsyncClient) -> None:
    await client.pause("typo")
    r = await cli("queues", "delete", "typo")
    assert (r.code, r.out) == (0, "deleted queue typo\n") and await names(client) == []

    await make_dead(client, "old", 2)
    r = await cli("queues", "delete", "old")
    assert r.code == 1 and "2 finished job(s)" in r.err and "(QUEUE_NOT_EMPTY)" in r.err
    r = await cli("queues", "delete", "old", "--force", stdin="n\n")
    assert r.code == 1 and "Delete queue old and its 2 finished job(s)?" in r.err
    assert await names(client) == ["old"]
    r = await cli("queues", "delete", "old", "--force", "--yes", "-o", "json")
    assert r.json() == {"name": "old", "deleted_jobs": 2} and await names(client) == []

    await client.enqueue("busy", {})
    await lease(client, "busy")
    r = await cli("queues", "delete", "busy", "--force", "--yes")
    assert r.code == 1 and "1 running job(s)" in r.err
    assert (await client.queue("busy")).stats.running == 1
    r = await cli("queues", "delete", "never-was")
    assert r.code == 3 and "'never-was' not found" in r.err


async def test_dead_lists_the_dead_letters(cli: Spool, client: spool.AsyncClient) -> None:
    dead_ids = await make_dead(client, "dlq", 2)
    await client.enqueue("dlq", {"alive": True})
    rows = (await cli("dead", "--queue", "dlq", "-o", "json")).json()
    assert sorted(r["id"] for r in rows) == sorted(dead_ids)
    assert all(r["state"] == job_pb2.Job.State.Name(job_pb2.Job.STATE_DEAD) for r in rows)
    r = await cli("dead", "--error", "timeout")
    assert r.code == 0 and "Timeout: slow" in r.out


async def test_queues_set_a_rate_limit_shows_it_and_the_throttled_jobs(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli("queues", "set", "calls", "--rate", "2/m", "--burst", "3")
    assert r.code == 0 and "2 per 1m00s, bursts of 3" in r.out, r.err
    await client.enqueue_many("calls", [{"i": i} for i in range(5)])
    leased = await client.lease(["calls"], max_jobs=10)
    assert len(leased) == 3
    line = (await cli("queues")).out.splitlines()[1]
    assert line.split()[:5] == ["calls", "no", "0", "2", "0"] and line.endswith("2 per 1m00s, bursts of 3")
    throttled = (await cli("ls", "-s", "throttled", "-o", "json")).json()
    assert len(throttled) == 2 and {j["status"] for j in throttled} == {"ready"}
    assert (await cli("queues", "set", "calls", "--no-rate-limit")).code == 0
    assert "rate limit        none" in (await cli("queues", "show", "calls")).out
    bad = await cli("queues", "set", "calls", "--burst", "2")
    assert bad.code == 2 and "--burst goes with --rate" in bad.err
    bad = await cli("queues", "set", "calls", "--rate", "fast")
    assert bad.code == 2 and "not a rate" in bad.err


async def test_enqueue_with_a_rate_limit_key(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli("enqueue", "calls", "{}", "--rate-key", "stripe", "--rate", "100/m", "--burst", "10")
    job = await client.get(r.out.strip())
    assert job.rate_limit_key == "stripe" and job.rate_limit.limit == 100 and job.rate_limit.burst == 10
    shown = (await cli("get", job.id, "-v")).out
    assert "100 per 1m00s, bursts of 10" in shown and "stripe" in shown
    bad = await cli("enqueue", "calls", "{}", "--rate-key", "stripe")
    assert bad.code == 2 and "go together" in bad.err
