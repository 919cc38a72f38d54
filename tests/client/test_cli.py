"""The `spool` command, run for real (a subprocess) against a live spoold."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

import spool
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App

Job = job_pb2.Job


async def run_spool(app: App, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Runs `python -m spool.cli` without blocking the loop, which also serves the server under test."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spool.cli",
        "--address",
        f"127.0.0.1:{app.port}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_json(app: App, *args: str, stdin: str = "") -> Any:
    code, out, err = await run_spool(app, "-o", "json", *args, stdin=stdin)
    assert code == 0, err
    return json.loads(out)


async def make_dead(client: spool.AsyncClient, queue: str, n: int) -> list[str]:
    jobs = await client.enqueue_many(queue, [{"i": i} for i in range(n)])
    for leased in await client.lease([queue], max_jobs=n):
        nack = qs.NackRequest(
            job_id=leased.job.id, lease_token=leased.lease_token, error=job_pb2.JobError(type="Timeout", message="slow")
        )
        await client.call(client.stub.Nack, nack)
    return [j.id for j in jobs]


async def test_enqueue_then_get_as_a_table_and_as_json(app: App) -> None:
    code, out, err = await run_spool(app, "enqueue", "emails", '{"to": "ada"}', "--max-attempts", "3", "-H", "k=v")
    assert code == 0, err
    job_id = out.strip()
    code, out, _ = await run_spool(app, "get", job_id)
    assert code == 0 and "emails" in out and "PENDING" in out and "1 of 3" not in out and "0 of 3" in out
    got = await run_json(app, "get", job_id)
    assert got["payload"] == {"to": "ada"} and got["headers"] == {"k": "v"} and got["state"] == "STATE_PENDING"


async def test_enqueue_reads_stdin(app: App) -> None:
    created = await run_json(app, "enqueue", "reports", "-", "--delay", "10m", stdin='{"n": 1}')
    assert created["payload"] == {"n": 1} and created["queue"] == "reports"


async def test_get_shows_the_attempts_as_a_timeline(app: App, client: spool.AsyncClient) -> None:
    (job_id,) = await make_dead(client, "timeline", 1)
    code, out, _ = await run_spool(app, "get", job_id)
    assert code == 0
    assert "attempts:" in out and "#1" in out and "FAILED" in out and "Timeout: slow" in out


async def test_exit_codes(app: App) -> None:
    code, _, err = await run_spool(app, "get", "999999")
    assert code == 3 and "not found" in err
    code, _, err = await run_spool(app, "get", "not-a-number")
    assert code == 1 and "INVALID_ARGUMENT" in err
    code, _, _ = await run_spool(app, "bogus-command")
    assert code == 2
    code, _, err = await run_spool(app, "requeue")
    assert code == 2 and "give job ids" in err
    code, _, err = await run_spool(app, "enqueue", "q", "not json")
    assert code == 2 and "not JSON" in err


async def test_help_has_examples(app: App) -> None:
    code, out, _ = await run_spool(app, "--help")
    assert code == 0 and "examples:" in out and "spool requeue --queue emails --state dead" in out


async def test_ls_applies_filters(app: App, client: spool.AsyncClient) -> None:
    await client.enqueue_many("alpha", [{"customer": 7}, {"customer": 8}])
    await client.enqueue("beta", {"customer": 7})
    rows = await run_json(app, "ls", "--queue", "alpha")
    assert sorted(r["payload"]["customer"] for r in rows) == [7, 8]
    rows = await run_json(app, "ls", "--payload", '{"customer": 7}', "--created-after", "1h")
    assert sorted(r["queue"] for r in rows) == ["alpha", "beta"]
    code, out, _ = await run_spool(app, "ls", "--queue", "beta", "--state", "pending")
    assert code == 0 and "beta" in out and "PENDING" in out and "alpha" not in out


async def test_dead_lists_the_dead_letters(app: App, client: spool.AsyncClient) -> None:
    dead_ids = await make_dead(client, "dlq", 2)
    await client.enqueue("dlq", {"alive": True})
    rows = await run_json(app, "dead", "--queue", "dlq")
    assert sorted(r["id"] for r in rows) == sorted(dead_ids)
    code, out, _ = await run_spool(app, "dead", "--error", "timeout")
    assert code == 0 and "Timeout: slow" in out


async def test_requeue_by_filter_asks_first_then_shows_progress(app: App, client: spool.AsyncClient) -> None:
    dead_ids = await make_dead(client, "bulk", 3)
    code, _, err = await run_spool(app, "requeue", "--queue", "bulk", "--state", "dead", stdin="n\n")
    assert code == 1 and "Requeue 3 job(s)?" in err and "aborted" in err
    assert [(await client.get(i)).state for i in dead_ids] == [Job.STATE_DEAD] * 3

    code, out, err = await run_spool(app, "requeue", "--queue", "bulk", "--state", "dead", "--yes")
    assert code == 0 and "requeued 3/3" in err and "requeued 3 job(s)" in out
    assert [(await client.get(i)).state for i in dead_ids] == [Job.STATE_PENDING] * 3


async def test_requeue_by_id_and_cancel(app: App, client: spool.AsyncClient) -> None:
    job = await client.enqueue("ids", {})
    code, out, _ = await run_spool(app, "cancel", job.id)
    assert code == 0 and f"{job.id}  CANCELLED" in out
    code, out, _ = await run_spool(app, "requeue", job.id)
    assert code == 0 and f"{job.id}  PENDING" in out
    code, _, err = await run_spool(app, "requeue", job.id)
    assert code == 1 and "WRONG_STATE" in err


@pytest.mark.parametrize(("finish", "exit_code"), [("ack", 0), ("cancel", 4)])
async def test_watch_follows_until_the_job_finishes(
    app: App, client: spool.AsyncClient, finish: str, exit_code: int
) -> None:
    job = await client.enqueue("watch", {})
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "spool.cli", "-a", f"127.0.0.1:{app.port}", "-o", "json", "watch", job.id),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert first["state"] == "STATE_PENDING"
    (leased,) = await client.lease(["watch"])
    if finish == "ack":
        await client.call(client.stub.Ack, qs.AckRequest(job_id=job.id, lease_token=leased.lease_token))
    else:
        await client.cancel(job.id)
        nack = qs.NackRequest(job_id=job.id, lease_token=leased.lease_token, error=job_pb2.JobError(type="Cancelled"))
        await client.call(client.stub.Nack, nack)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == exit_code, err
    states = [json.loads(line)["state"] for line in out.decode().splitlines()]
    assert states[-1] == ("STATE_SUCCEEDED" if finish == "ack" else "STATE_CANCELLED")


async def test_queues_pause_and_resume(app: App, client: spool.AsyncClient) -> None:
    await client.enqueue("ops", {})
    code, out, _ = await run_spool(app, "pause", "ops")
    assert code == 0 and "ops paused" in out
    (ops,) = [q for q in await run_json(app, "queues") if q["name"] == "ops"]
    assert ops["paused"] is True and ops["stats"]["ready"] == "1"
    code, out, _ = await run_spool(app, "queues")
    assert code == 0 and "READY" in out and "ops" in out and "yes" in out
    code, out, _ = await run_spool(app, "resume", "ops")
    assert code == 0 and "ops resumed" in out
    code, _, err = await run_spool(app, "pause", "bad name")
    assert code == 1 and "INVALID_ARGUMENT" in err
