"""The pruner deletes finished jobs past their queue's retention, with their attempts, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from spoold.loops import Pruner
from spoold.model import Retention
from spoold.store.retention import RetentionStore
from tests.helpers import enqueue_request
from tests.search.rows import add_attempt, insert

DEFAULTS = Retention()  # 7 days succeeded and cancelled, 30 days dead


def ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    assert p is not None
    try:
        yield p
    finally:
        await p.close()


def pruner(pool: asyncpg.Pool, batch: int = 1000) -> Pruner:
    return Pruner(RetentionStore(pool), interval=3600, batch=batch, defaults=DEFAULTS)


async def remaining(db: asyncpg.Connection, ids: list[str]) -> list[str]:
    found = await db.fetch("SELECT id FROM spool.jobs WHERE id = ANY($1::bigint[]) ORDER BY id", [int(i) for i in ids])
    return [str(r["id"]) for r in found]


async def test_deletes_only_expired_finished_jobs(db, pool) -> None:  # type: ignore[no-untyped-def]
    expired = (
        await insert(db, 2, state="succeeded", finished_at=ago(days=8))
        + await insert(db, 2, state="cancelled", finished_at=ago(days=7, minutes=1))
        + await insert(db, 2, state="dead", finished_at=ago(days=31))
    )
    kept = (
        await insert(db, 2, state="succeeded", finished_at=ago(days=6))
        + await insert(db, 2, state="cancelled", finished_at=ago(days=6, hours=23))
        + await insert(db, 2, state="dead", finished_at=ago(days=8))
        + await insert(db, 2, state="pending", created_at=ago(days=100))
        + await insert(db, 2, state="running", created_at=ago(days=100))
    )
    for job_id in expired + kept:
        await add_attempt(db, job_id)
    assert await pruner(pool).run_once() == len(expired)
    assert await remaining(db, expired + kept) == kept
    orphans = await db.fetchval(
        "SELECT count(*) FROM spool.attempts a WHERE NOT EXISTS (SELECT 1 FROM spool.jobs j WHERE j.id = a.job_id)"
    )
    assert orphans == 0
    assert await db.fetchval("SELECT count(*) FROM spool.attempts") == len(kept)
    assert await pruner(pool).run_once() == 0


async def test_respects_per_queue_retention(db, pool) -> None:  # type: ignore[no-untyped-def]
    await db.execute(
        """INSERT INTO spool.queues (name, retention_succeeded, retention_dead) VALUES
           ('short', interval '1 hour', interval '2 hours'), ('long', interval '60 days', NULL)"""
    )
    expired = (
        await insert(db, queue="short", state="succeeded", finished_at=ago(hours=2))
        + await insert(db, queue="short", state="dead", finished_at=ago(hours=3))
        + await insert(db, queue="short", state="cancelled", finished_at=ago(days=8))  # column NULL: default
        + await insert(db, queue="long", state="succeeded", finished_at=ago(days=61))
        + await insert(db, queue="long", state="dead", finished_at=ago(days=31))  # column NULL: default
        + await insert(db, queue="plain", state="succeeded", finished_at=ago(days=8))  # no row: defaults
    )
    kept = (
        await insert(db, queue="short", state="succeeded", finished_at=ago(minutes=30))
        + await insert(db, queue="short", state="dead", finished_at=ago(hours=1))
        + await insert(db, queue="long", state="succeeded", finished_at=ago(days=8))
        + await insert(db, queue="long", state="dead", finished_at=ago(days=29))
        + await insert(db, queue="plain", state="succeeded", finished_at=ago(days=6))
    )
    assert await pruner(pool).run_once() == len(expired)
    assert await remaining(db, expired + kept) == kept


async def test_works_in_batches(db, pool) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 1500, queue="a", state="succeeded", finished_at=ago(days=9))
    await insert(db, 1000, queue="b", state="dead", finished_at=ago(days=40))
    p = pruner(pool, batch=1000)
    assert [await p.run_once() for _ in range(4)] == [1000, 1000, 500, 0]
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0


async def test_two_pruners_at_once_split_the_work(db, db_url) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 3000, queue="a", state="succeeded", finished_at=ago(days=9))
    await insert(db, 3000, queue="b", state="cancelled", finished_at=ago(days=9))
    pools = [await asyncpg.create_pool(db_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        pruners = [pruner(p, batch=500) for p in pools if p is not None]
        total = 0
        while True:
            rounds = await asyncio.gather(*(p.run_once() for p in pruners))
            total += sum(rounds)
            if not any(rounds):
                break
    finally:
        for p in pools:
            if p is not None:
                await p.close()
    assert total == 6000  # every job deleted once: nothing failed, nothing counted twice
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0


async def test_idempotency_key_is_free_again_after_pruning(stub, db, app) -> None:  # type: ignore[no-untyped-def]
    first = await stub.Enqueue(enqueue_request("mail", idempotency_key="receipt-5512"))
    await db.execute(
        "UPDATE spool.jobs SET state = 'succeeded', finished_at = now() - interval '8 days' WHERE id = $1",
        int(first.job.id),
    )
    assert await pruner(app.pool).run_once() == 1
    again = await stub.Enqueue(enqueue_request("mail", idempotency_key="receipt-5512"))
    assert not again.deduplicated
    assert again.job.id != first.job.id


async def test_the_app_runs_a_pruner(app) -> None:  # type: ignore[no-untyped-def]
    assert any(isinstance(loop, Pruner) for loop in app.loops)


async def test_deletes_idle_full_rate_key_buckets(db, pool) -> None:  # type: ignore[no-untyped-def]
    await db.execute(
        """INSERT INTO spool.rate_keys (key, tat, opens_at) VALUES
           ('idle', now() - interval '2 minutes', now() - interval '3 minutes'),
           ('never-used', NULL, NULL),
           ('just-full', now() - interval '10 seconds', now() - interval '20 seconds'),
           ('shut', now() + interval '1 minute', now() + interval '30 seconds'),
           ('waited-on', now() - interval '1 hour', now() - interval '1 hour')"""
    )
    (waiting,) = await insert(db, state="pending")
    await db.execute(
        """UPDATE spool.jobs SET rate_key = 'waited-on', rate_limit = 1, rate_interval = interval '1 second',
           rate_burst = 1 WHERE id = $1""",
        int(waiting),
    )
    assert await pruner(pool).run_once() == 2
    kept = await db.fetch("SELECT key FROM spool.rate_keys ORDER BY key")
    assert [r["key"] for r in kept] == ["just-full", "shut", "waited-on"]
