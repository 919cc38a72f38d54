"""Timeouts: PostgreSQL cancels a statement past the statement timeout, a call that finds the pool
busy past the acquire timeout answers UNAVAILABLE, and a client's deadline cancels its query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import grpc
import pytest

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.config import Settings
from spoold.store.database import create_pool
from spoold.store.migrate import _LOCK_KEY as MIGRATION_LOCK
from spoold.store.migrate import migrate
from tests import conftest
from tests.helpers import enqueue_request, expect_error

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.fixture
async def served(db_url: str, settings: Settings) -> AsyncIterator[tuple[App, queue_service_pb2_grpc.QueueServiceStub]]:
    app = App(settings, db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, queue_service_pb2_grpc.QueueServiceStub(channel)
    finally:
        await app.stop()


async def _waiting_on_lock(db: asyncpg.Connection) -> int:
    """spoold's statements now waiting for a lock in this database."""
    found = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'spoold' AND wait_event_type = 'Lock'"
    )
    return int(found)


@pytest.mark.parametrize("settings", [conftest.test_settings(statement_timeout=timedelta(milliseconds=300))])
async def test_a_statement_past_the_statement_timeout_is_cancelled_and_answers_unavailable(
    served: tuple[App, queue_service_pb2_grpc.QueueServiceStub], db: asyncpg.Connection
) -> None:
    _, stub = served
    job = (await stub.Enqueue(enqueue_request("q"))).job
    async with db.transaction():
        await db.execute("LOCK TABLE spool.jobs IN ACCESS EXCLUSIVE MODE")
        err = await expect_error(
            stub.GetJob(qs.GetJobRequest(job_id=job.id), timeout=30), UNAVAILABLE, "DATABASE_UNAVAILABLE"
        )
        assert "statement timeout" in (err.details() or "")
        assert await _waiting_on_lock(db) == 0
    assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.id == job.id


@pytest.mark.parametrize(
    "settings", [conftest.test_settings(pool_min_size=1, pool_max_size=1, pool_acquire_timeout=timedelta(seconds=0.3))]
)
async def test_a_busy_pool_answers_unavailable_after_the_acquire_timeout(
    served: tuple[App, queue_service_pb2_grpc.QueueServiceStub],
) -> None:
    app, stub = served
    job = (await stub.Enqueue(enqueue_request("q"))).job
    assert app.pool is not None
    async with app.pool.acquire(timeout=30):  # the one connection, held busy
        err = await expect_error(
            stub.GetJob(qs.GetJobRequest(job_id=job.id), timeout=30), UNAVAILABLE, "DATABASE_UNAVAILABLE"
        )
        assert "no database connection free within 0.3s" in (err.details() or "")
    assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.id == job.id


async def test_a_call_past_its_deadline_stops_its_query(
    served: tuple[App, queue_service_pb2_grpc.QueueServiceStub], db: asyncpg.Connection
) -> None:
    _, stub = served
    await stub.Enqueue(enqueue_request("q"))
    async with db.transaction():
        await db.execute("LOCK TABLE spool.jobs IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(qs.ListJobsRequest(), timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The lock is still held: only the server's cancel can have ended the waiting statement.
        await conftest.wait_until(lambda: _no_lock_waits(db))
    assert (await stub.ListJobs(qs.ListJobsRequest())).jobs


async def _no_lock_waits(db: asyncpg.Connection) -> bool:
    return await _waiting_on_lock(db) == 0


async def test_migrations_run_without_the_statement_timeout(admin_url: str) -> None:
    """A migration waits on the migration lock (another replica migrating) far past the timeout."""
    name = f"spool_test_{uuid.uuid4().hex[:12]}"
    url = conftest.with_database(admin_url, name)
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await create_pool(url, 1, 1, statement_timeout=timedelta(milliseconds=50))
    try:
        async with conftest.connected(url) as holder, pool.acquire() as conn:
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                migrating = asyncio.create_task(migrate(conn))

                async def waited_past_the_timeout() -> bool:
                    assert not migrating.done(), migrating
                    found = await holder.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'spoold' AND wait_event_type = 'Lock'"
                        " AND clock_timestamp() - query_start > interval '250 ms'"
                    )
                    return bool(found)

                await conftest.wait_until(waited_past_the_timeout)
            assert await migrating
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute("SELECT pg_sleep(1)")  # requests still have the timeout
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
