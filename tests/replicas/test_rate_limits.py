"""Rate limits across two real `spoold` processes and 20 concurrent workers: a queue limited to
10 jobs/s starts at most 10 (plus its burst) in any 1-second window and every job finishes; a key
limited to 5/s holds while the other jobs of its queue run at full speed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from google.protobuf.duration_pb2 import Duration

from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from tests.ratelimits.support import jobs, limit_queue, most_in_any_window, rate, starts
from tests.replicas.test_replicas import Replica, processes, replicas

__all__ = ["processes", "replicas"]

BURST = 2


async def work(replica: Replica, queues: list[str], done: set[str], total: int, index: int) -> None:
    """One worker: long-poll Lease one job at a time, hold it briefly, Ack."""
    while len(done) < total:
        got = await replica.stub.Lease(
            qs.LeaseRequest(queues=queues, max_jobs=1, wait=Duration(seconds=1), worker_id=f"w{index}")
        )
        for leased in got.jobs:
            await asyncio.sleep(0.05)
            await replica.stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token))
            done.add(leased.job.id)


async def run_workers(replicas: list[Replica], queues: list[str], total: int) -> None:
    done: set[str] = set()
    workers = [work(replicas[i % 2], queues, done, total, i) for i in range(20)]
    await asyncio.wait_for(asyncio.gather(*workers), 120)


async def test_a_queue_limit_holds_across_replicas_and_every_job_finishes(
    replicas: list[Replica], db: asyncpg.Connection
) -> None:
    await limit_queue(AdminServiceStub(replicas[0].channel), "limited", rate(10, burst=BURST))
    await replicas[1].stub.EnqueueBatch(jobs("limited", 50))
    await run_workers(replicas, ["limited"], 50)
    started = await starts(db)
    assert len(started) == 50
    assert most_in_any_window(started) <= 10 + BURST, most_in_any_window(started)
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'") == 50
    workers = await db.fetchval("SELECT count(DISTINCT worker_id) FROM spool.attempts")
    assert workers > 10  # the jobs were spread over the workers of both replicas


async def test_a_key_limit_holds_across_replicas_while_other_keys_run_at_full_speed(
    replicas: list[Replica], db: asyncpg.Connection
) -> None:
    await replicas[0].stub.EnqueueBatch(jobs("shared", 30, rate_limit_key="partner", rate_limit=rate(5)))
    await replicas[1].stub.EnqueueBatch(jobs("shared", 60))
    await run_workers(replicas, ["shared"], 90)
    keyed = await starts(db, "j.rate_key = 'partner'")
    free = await starts(db, "j.rate_key IS NULL")
    assert len(keyed) == 30 and len(free) == 60
    assert most_in_any_window(keyed) <= 5 + 1, most_in_any_window(keyed)
    # The others are not paced: 20 workers took them at their own speed, far faster than 5/s.
    assert free[-1] - free[0] < timedelta(seconds=(60 / 5) / 2)
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'") == 90
