"""The shared long-poll probe (sql/ready.sql): which queues have a job a claim might take now."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from spoold.model import NewJob
from spoold.store.database import create_pool
from spoold.store.jobs import JobStore
from spoold.store.ready import ReadyStore

LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, 1, 2)
    try:
        yield p
    finally:
        await p.close()


async def enqueue(pool: asyncpg.Pool, queue: str, **fields: object) -> int:
    (done,) = await JobStore(pool).enqueue([NewJob(queue=queue, payload=b"{}", **fields)])  # type: ignore[arg-type]
    return int(done.row["id"])


async def test_a_queue_is_ready_when_a_pending_job_is_due_and_only_then(pool: asyncpg.Pool) -> None:
    probe = ReadyStore(pool)
    await enqueue(pool, "now")
    await enqueue(pool, "later", run_at=LATER)
    running = await enqueue(pool, "running")
    await pool.execute("UPDATE spool.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", running)
    assert await probe.ready(["now", "later", "running", "empty"]) == {"now"}
    assert probe.probes == 1


async def test_a_due_job_behind_future_jobs_of_higher_priority_is_found(pool: asyncpg.Pool) -> None:
    probe = ReadyStore(pool)
    for priority in (9, 7, 5):
        await enqueue(pool, "q", priority=priority, run_at=LATER)
    assert await probe.ready(["q"]) == set()
    await enqueue(pool, "q", priority=1)
    assert await probe.ready(["q"]) == {"q"}


async def test_past_its_depth_the_probe_says_ready_rather_than_miss_a_job(pool: asyncpg.Pool) -> None:
    probe = ReadyStore(pool, depth=2)
    for priority in (9, 7, 5):
        await enqueue(pool, "q", priority=priority, run_at=LATER)
    assert await probe.ready(["q"]) == {"q"}, "unsure after two levels: counted as ready"


async def test_a_paused_queue_is_not_ready(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "q")
    await pool.execute("INSERT INTO spool.queues (name, paused) VALUES ('q', true)")
    assert await ReadyStore(pool).ready(["q"]) == set()
