"""No impossible states: random walks of ack, fail, reap, cancel, requeue, retry (fix and resume), pause and resume over
pipelines, with the invariant checked from the rows after every step:

- each step's waiting_on is the number of its parents that have not succeeded;
- a PENDING or RUNNING step has every parent succeeded, and a WAITING step has one that has not
  (or its pipeline is paused, or it is the on_failure step);
- a RUNNING pipeline that is not paused has a step that can run (PENDING or RUNNING).
"""

from __future__ import annotations

import random

import asyncpg
import grpc
import pytest

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.api.support import Stub, expire_lease, reaper
from tests.pipelines.support import PStub, request, step

_STEPS = """
SELECT j.id, j.state::text AS state, j.waiting_on, j.pipeline_id, p.paused, j.id = p.on_failure_id AS on_failure,
       (SELECT count(*) FROM spool.jobs q WHERE q.id = ANY(j.parent_ids) AND q.state <> 'succeeded') AS unfinished
FROM spool.jobs j JOIN spool.pipelines p ON p.id = j.pipeline_id
"""
_STATES = """
SELECT p.id, p.paused, spool.pipeline_state(ARRAY(SELECT j.state FROM spool.jobs j
    WHERE j.pipeline_id = p.id AND j.id IS DISTINCT FROM p.on_failure_id))::text AS state,
    EXISTS (SELECT 1 FROM spool.jobs j WHERE j.pipeline_id = p.id AND j.id IS DISTINCT FROM p.on_failure_id
            AND j.state IN ('pending', 'running')) AS can_run
FROM spool.pipelines p
"""


async def check(db: asyncpg.Connection, history: list[str]) -> None:
    for s in await db.fetch(_STEPS):
        where = f"step {s['id']} after {history[-6:]}"
        if not s["on_failure"]:
            assert s["waiting_on"] == s["unfinished"], where
            if s["state"] in ("pending", "running"):
                assert s["unfinished"] == 0, where
            if s["state"] == "waiting" and not s["paused"]:
                assert s["unfinished"] > 0, where
    for p in await db.fetch(_STATES):
        if p["state"] == "running" and not p["paused"]:
            assert p["can_run"], f"pipeline {p['id']} is RUNNING with nothing able to run, after {history[-6:]}"


def diamond(i: int) -> ps.EnqueuePipelineRequest:
    after = {"b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",)}
    steps = [step(n, after=after.get(n, ()), max_attempts=2) for n in "abcde"]
    return request(*steps, name=f"walk{i}", on_failure=step("alert", queue="alerts"))


async def _act(rng: random.Random, app: App, stub: Stub, pipes: PStub, db: asyncpg.Connection, ids: list[str]) -> str:
    action = rng.choice(
        ["ack", "ack", "ack", "fail", "reap", "cancel", "cancel_job", "requeue", "pause", "resume", "retry"]
    )
    if action in ("ack", "fail", "reap"):
        leased = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs
        if not leased:
            return f"{action}: nothing ready"
        job = leased[0]
        if action == "ack":
            await stub.Ack(qs.AckRequest(job_id=job.job.id, lease_token=job.lease_token, result=b"1"))
        elif action == "fail":
            error = job_pb2.JobError(type="Walk", message="failed")
            await stub.Nack(qs.NackRequest(job_id=job.job.id, lease_token=job.lease_token, error=error))
        else:
            await expire_lease(db, job.job.id)
            await reaper(app).run_once()
        return f"{action} {job.job.step_name}@{job.job.pipeline_id}"
    pipeline_id = rng.choice(ids)
    if action == "cancel":
        await pipes.CancelPipeline(ps.CancelPipelineRequest(pipeline_id=pipeline_id))
    elif action == "pause":
        await pipes.PausePipeline(ps.PausePipelineRequest(pipeline_id=pipeline_id))
    elif action == "resume":
        await pipes.ResumePipeline(ps.ResumePipelineRequest(pipeline_id=pipeline_id))
    elif action == "cancel_job":
        pending = await db.fetch(
            "SELECT id FROM spool.jobs WHERE pipeline_id = $1 AND state = 'pending'", int(pipeline_id)
        )
        if not pending:
            return "cancel_job: none pending"
        await stub.CancelJob(qs.CancelJobRequest(job_id=str(rng.choice(pending)["id"])))
    elif action == "retry":
        finished = "SELECT id FROM spool.jobs WHERE pipeline_id = $1 AND state IN ('dead', 'cancelled', 'succeeded')"
        done = await db.fetch(finished, int(pipeline_id))
        if not done:
            return "retry: nothing finished"
        mode = rng.choice([ps.RetryStepRequest.MODE_FAILED_ONLY, ps.RetryStepRequest.MODE_DOWNSTREAM])
        try:
            await pipes.RetryStep(ps.RetryStepRequest(job_id=str(rng.choice(done)["id"]), mode=mode))
        except grpc.aio.AioRpcError as err:  # a succeeded step alone, or a running one downstream
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
            return "retry: refused"
    else:
        done = await db.fetch(
            "SELECT id FROM spool.jobs WHERE pipeline_id = $1 AND state IN ('dead', 'cancelled')", int(pipeline_id)
        )
        if not done:
            return "requeue: nothing finished"
        await stub.Requeue(qs.RequeueRequest(job_ids=[str(rng.choice(done)["id"])]))
    # Retries wait out no backoff here: the walk is about states, not time.
    await db.execute("UPDATE spool.jobs SET run_at = now() WHERE state = 'pending'")
    return f"{action} {pipeline_id}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_random_walks_keep_the_invariant(seed: int, app: App, stub: Stub, pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    ids = [(await pipes.EnqueuePipeline(diamond(i))).pipeline.id for i in range(3)]
    history: list[str] = []
    await check(db, history)
    for _ in range(120):
        history.append(await _act(rng, app, stub, pipes, db, ids))
        await db.execute("UPDATE spool.jobs SET run_at = now() WHERE state = 'pending'")
        await check(db, history)
