"""A pipeline is pruned whole, with its steps, once finished past retention; never step by step."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.loops import Pruner
from spoold.model import Retention
from spoold.store.retention import RetentionStore
from tests.api.support import Stub, lease_one
from tests.pipelines.support import PStub, ack, request, step


def pruner(app: App) -> Pruner:
    assert app.pool is not None
    keep = Retention(succeeded=timedelta(hours=1), cancelled=timedelta(hours=1), dead=timedelta(hours=2))
    return Pruner(RetentionStore(app.pool), interval=3600, batch=100, defaults=keep)


async def _age(db: asyncpg.Connection, hours: int) -> None:
    await db.execute("UPDATE spool.jobs SET finished_at = finished_at - $1::interval", timedelta(hours=hours))


async def test_finished_pipelines_go_with_their_steps(app: App, stub: Stub, pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    done = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))).pipeline
    await ack(stub, await lease_one(stub, "q"))
    await ack(stub, await lease_one(stub, "q"))
    running = (await pipes.EnqueuePipeline(request(step("a"), step("b", after=("a",))))).pipeline
    await ack(stub, await lease_one(stub, "q"))  # its first step finished, its second is ready
    await _age(db, 3)
    assert await pruner(app).run_once() == 2
    left = await db.fetch("SELECT pipeline_id FROM spool.jobs")
    assert {r["pipeline_id"] for r in left} == {int(running.id)}
    assert await db.fetchval("SELECT count(*) FROM spool.pipelines WHERE id = $1", int(done.id)) == 0
    assert await db.fetchval("SELECT count(*) FROM spool.attempts a JOIN spool.jobs j ON j.id = a.job_id") == 1


async def test_a_failed_pipeline_is_kept_for_the_dead_retention(app: App, stub: Stub, pipes: PStub, db) -> None:  # type: ignore[no-untyped-def]
    await pipes.EnqueuePipeline(request(step("a", max_attempts=1), step("b", after=("a",))))
    leased = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, retryable=False))
    await _age(db, 1)
    assert await pruner(app).run_once() == 0
    await _age(db, 2)
    assert await pruner(app).run_once() == 2
