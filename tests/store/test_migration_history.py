"""Migration 0013 on a database that already has jobs: SUCCEEDED jobs acked before it lose the last
error of an earlier attempt (their attempts keep it), and every existing job and attempt gets a
requeue count of 0."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from spoold.store.migrate import migrate, migrations
from tests.conftest import with_database

_BOOKKEEPING = """
CREATE SCHEMA spool;
CREATE TABLE spool.migrations (version integer PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())
"""


@pytest.fixture
async def empty_db(admin_url: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"spool_migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    conn = await asyncpg.connect(with_database(admin_url, name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def migrate_until(conn: asyncpg.Connection, version: int) -> None:
    await conn.execute(_BOOKKEEPING)
    for number, name, sql in migrations():
        if number < version:
            await conn.execute(sql)
            await conn.execute("INSERT INTO spool.migrations (version, name) VALUES ($1, $2)", number, name)


async def test_existing_successes_lose_an_earlier_attempts_error(empty_db: asyncpg.Connection) -> None:
    await migrate_until(empty_db, 13)
    job_id = await empty_db.fetchval("SELECT spool.enqueue('q', '{}')")
    await empty_db.execute(
        """UPDATE spool.jobs SET state = 'succeeded', attempt = 2, finished_at = now(),
               error_type = 'Timeout', error_message = 'slow', error_details = 'trace' WHERE id = $1""",
        job_id,
    )
    await empty_db.execute(
        """INSERT INTO spool.attempts (job_id, lease_token, number, started_at, finished_at, outcome,
               error_type, error_message)
           VALUES ($1, 1, 1, now(), now(), 'failed', 'Timeout', 'slow')""",
        job_id,
    )
    assert await migrate(empty_db) == [name for number, name, _ in migrations() if number >= 13]
    job = await empty_db.fetchrow("SELECT * FROM spool.jobs WHERE id = $1", job_id)
    assert (job["error_type"], job["error_message"], job["error_details"], job["requeues"]) == (None, None, None, 0)
    attempt = await empty_db.fetchrow("SELECT * FROM spool.attempts WHERE job_id = $1", job_id)
    assert (attempt["error_type"], attempt["requeues"]) == ("Timeout", 0)
    with pytest.raises(asyncpg.CheckViolationError):
        await empty_db.execute("UPDATE spool.jobs SET error_type = 'x' WHERE id = $1", job_id)
