"""The `spool` command with pipelines: list a pipeline's steps, and the waiting ones."""

from __future__ import annotations

import json

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
    assert watched.code == 0 and "pipeline cancelled" in watched.out
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
