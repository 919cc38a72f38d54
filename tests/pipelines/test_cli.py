"""The `spool` command with pipelines: list a pipeline's steps, and the waiting ones."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import spool
from spool import step
from spool.v1 import queue_service_pb2 as qs
from tests.cli.conftest import Spool, cli

__all__ = ["cli"]


async def test_ls_by_pipeline_and_waiting_state(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract"), step("render", after=["extract"])])
    await client.enqueue("other", {})
    listed = (await cli("ls", "--pipeline", p.id, "-o", "json")).json()
    assert sorted(j["step_name"] for j in listed) == ["extract", "render"]
    waiting = (await cli("ls", "-s", "waiting", "-o", "json")).json()
    assert [(j["step_name"], j["status"]) for j in waiting] == [("render", "waiting")]
    table = await cli("ls", "-s", "waiting")
    assert table.code == 0 and "waiting" in table.out


async def test_get_shows_a_steps_pipeline_and_a_jobs_durable_steps(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract")])
    shown = await cli("get", p.steps[0].job.id)
    assert shown.code == 0 and f"{p.id}, step extract" in shown.out
    job = await client.enqueue("durable", {})
    (leased,) = await client.lease(["durable"], max_jobs=1)
    checkpoint = b'{"spool.steps": {"charge": {"id": "ch_1"}}, "spool.checkpoint": 3}'
    await client.stub.Heartbeat(
        qs.HeartbeatRequest(job_id=job.id, lease_token=leased.lease_token, checkpoint=checkpoint)
    )
    shown = await cli("get", job.id)
    assert shown.code == 0 and "steps:" in shown.out and "charge" in shown.out and "ch_1" in shown.out


async def test_pipeline_get_watch_pause_resume_cancel(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract"), step("render", after=["extract"])])
    shown = await cli("pipeline", "get", p.id)
    assert shown.code == 0, shown.err
    assert "export" in shown.out and "running" in shown.out and "extract" in shown.out and "waiting" in shown.out
    assert (await cli("pipeline", "get", p.id, "-o", "json")).json()["steps"][1]["depends_on"] == ["extract"]
    paused = await cli("pipeline", "pause", p.id)
    assert paused.code == 0 and "(paused)" in paused.out
    assert (await cli("pipeline", "resume", p.id)).code == 0
    cancelled = await cli("pipeline", "cancel", p.id)
    assert cancelled.code == 0 and "cancelled" in cancelled.out
    watched = await cli("pipeline", "watch", p.id)
    assert watched.code == 4 and "pipeline cancelled" in watched.out  # as `spool watch` of a job that ends so
    missing = await cli("pipeline", "get", "999999")
    assert missing.code != 0 and "not found" in missing.err


async def test_pipeline_retry_with_a_new_payload(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract", max_attempts=1)])
    (leased,) = await client.lease(["extract"], max_jobs=1)
    bad = qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, retryable=False)
    await client.stub.Nack(bad)
    retried = await cli("pipeline", "retry", leased.job.id, '{"rows": 10}', "-o", "json")
    assert retried.json()["state"] == "STATE_RUNNING"
    assert json.loads((await client.get(leased.job.id)).payload) == {"rows": 10}
    assert (await client.pipelines.get(p.id)).state == spool.Pipeline.STATE_RUNNING


async def test_pipeline_ls_filters_and_pages(cli: Spool, client: spool.AsyncClient) -> None:
    for i in range(3):
        await client.pipeline(f"export-{i}", [step("extract"), step("render", after=["extract"])])
    cancelled = await client.pipeline("import", [step("load")])
    await client.pipelines.cancel(cancelled.id)
    table = await cli("pipeline", "ls")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "STEPS", "CREATED"]
    assert [ln.split()[1] for ln in lines[1:]] == ["import", "export-2", "export-1", "export-0"]
    assert "0/2" in lines[2]
    listed = (await cli("pipeline", "ls", "--name", "export-", "-n", "2", "-o", "json")).json()
    assert [p["name"] for p in listed] == ["export-2", "export-1"]
    assert [p["name"] for p in (await cli("pipeline", "ls", "-s", "cancelled", "-o", "json")).json()] == ["import"]
    bad = await cli("pipeline", "ls", "-s", "nope")
    assert bad.code == 2 and "nope" in bad.err


async def test_pipeline_watch_follows_the_stream_to_the_end(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract"), step("render", after=["extract"])])
    watching = asyncio.create_task(cli("pipeline", "watch", p.id))
    for queue in ("extract", "render"):
        (leased,) = await client.lease([queue], max_jobs=1, wait=timedelta(seconds=10))
        await client.stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token))
    watched = await asyncio.wait_for(watching, 30)
    assert watched.code == 0, watched.err
    assert "render  succeeded" in watched.out and "pipeline succeeded" in watched.out
    assert watched.out.index("extract  succeeded") < watched.out.index("pipeline succeeded")
