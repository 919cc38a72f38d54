"""Admitting jobs with concurrency keys takes advisory locks on at most 64 hash buckets per claim,
however many distinct keys the claim meets, and the per-key limits stay exact."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from spoold import embedded
from spoold.store.migrate import migrate
from tests.conftest import connected

BUCKETS = 64

# Jobs straight into the table, n of them per key over `keys` keys, ready now.
FILL = """
INSERT INTO spool.jobs (queue, payload_json, content_type, max_attempts, backoff_kind, backoff_initial,
    backoff_max, backoff_multiplier, backoff_jitter, lease_duration, concurrency_key, concurrency_limit,
    concurrency_global, run_at)
SELECT $1, '{}', 'application/json', 1, 'fixed', '1s', '1s', 1, false, '1h',
    'key-' || (g % $2::integer), $3::integer, $4::boolean, now() - interval '1 second'
FROM generate_series(1, $2::integer * $5::integer) AS g
"""
FINISH = """
UPDATE spool.jobs SET state = 'succeeded', lease_expires_at = NULL, attempt_deadline = NULL, finished_at = now()
WHERE id = ANY($1::bigint[])
"""
MOST_RUNNING = """
SELECT coalesce(max(n), 0) FROM (
    SELECT count(*) AS n FROM spool.jobs WHERE state = 'running'
    GROUP BY concurrency_global, CASE WHEN concurrency_global THEN NULL ELSE queue END, concurrency_key) AS per_key
"""


async def fill(
    conn: asyncpg.Connection, keys: int, *, queue: str = "q", limit: int = 1, glob: bool = False, per_key: int = 1
) -> None:
    await conn.execute(FILL, queue, keys, limit, glob, per_key)


async def test_a_claim_over_1000_keys_holds_at_most_64_advisory_locks(db: asyncpg.Connection) -> None:
    await fill(db, 1000)
    async with db.transaction():
        claimed = await db.fetch("SELECT id FROM spool.claim(ARRAY['q'], 1000, NULL, 'w')")
        held = await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    assert len(claimed) == 1000
    assert 0 < held <= BUCKETS


async def test_limits_stay_exact_across_concurrent_claims(db_url: str, db: asyncpg.Connection) -> None:
    # 150 keys share 64 buckets; each key has more jobs than its limit, queue-scoped in two queues
    # and global across both.
    await fill(db, 100, queue="a", limit=2, per_key=4)
    await fill(db, 100, queue="b", limit=2, per_key=4)
    await fill(db, 50, queue="a", limit=3, glob=True, per_key=3)
    await fill(db, 50, queue="b", limit=3, glob=True, per_key=3)
    total = await db.fetchval("SELECT count(*) FROM spool.jobs")
    done = 0
    stop = asyncio.Event()

    async def claimer(queues: list[str]) -> None:
        nonlocal done
        async with connected(db_url) as conn:
            while not stop.is_set():
                ids = [r["id"] for r in await conn.fetch("SELECT id FROM spool.claim($1, 40, NULL, 'w')", queues)]
                await asyncio.sleep(0)  # the other claimers run while these jobs are held
                await conn.execute(FINISH, ids)
                done += len(ids)
                if done >= total:
                    stop.set()

    async def observer() -> int:
        most = 0
        async with connected(db_url) as conn:
            while not stop.is_set():
                most = max(most, await conn.fetchval(MOST_RUNNING))
                await asyncio.sleep(0.002)  # a sampling interval, not a wait for anything
        return most

    watching = asyncio.create_task(observer())
    try:
        await asyncio.wait_for(asyncio.gather(*(claimer(q) for q in (["a"], ["b"], ["a", "b"]) * 2)), 120)
    finally:
        stop.set()
    assert 1 <= await watching <= 3
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'") == total
    # Exact: the per-key running counts never went past a limit.
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state <> 'succeeded'") == 0


@pytest.fixture(scope="module")
async def small_lock_table() -> AsyncIterator[str]:
    """A throwaway PostgreSQL (spoold's embedded one) whose shared lock table holds a few hundred
    locks (the default server holds thousands): enough for any claim, far too few for a lock per key."""
    with tempfile.TemporaryDirectory(prefix="spool-locks-pg-") as tmp:
        database = embedded.start(Path(tmp))
        try:
            async with connected(database.url) as conn:
                await conn.execute("ALTER SYSTEM SET max_locks_per_transaction = 10")
                await conn.execute("ALTER SYSTEM SET max_connections = 20")
        finally:
            database.stop()
        database = embedded.start(Path(tmp))  # again, with the settings above
        try:
            yield database.url
        finally:
            database.stop()


@pytest.mark.timeout(180)
async def test_many_distinct_keys_cannot_exhaust_the_lock_table(small_lock_table: str) -> None:
    async with connected(small_lock_table) as conn:
        await migrate(conn)
        await fill(conn, 5000)
        claims = [
            conn.fetch("SELECT id FROM spool.claim(ARRAY['q'], 5000, NULL, 'w')"),
        ]
        (claimed,) = await asyncio.gather(*claims)
        assert len(claimed) == 5000
        await conn.execute(FINISH, [r["id"] for r in claimed])
        await fill(conn, 4000)

        async def claim() -> int:
            async with connected(small_lock_table) as other:
                return len(await other.fetch("SELECT id FROM spool.claim(ARRAY['q'], 1000, NULL, 'w')"))

        assert sum(await asyncio.gather(*(claim() for _ in range(4)))) == 4000
