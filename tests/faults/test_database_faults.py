"""Database errors are classified in one place, by type and SQLSTATE: a fault of the database's is
UNAVAILABLE (clients retry), never INTERNAL, whatever state it leaves the driver in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import grpc
import pytest

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.errors import Conflict, InvalidArgument, SpoolError, Unavailable
from spoold.store.database import classify, create_pool, translated
from tests import conftest
from tests.faults.conftest import kill_held_connection, terminate
from tests.faults.proxy import FaultProxy
from tests.helpers import enqueue_request, expect_error


async def _raised(conn: asyncpg.Connection, sqlstate: str) -> BaseException:
    """A real PostgreSQL error carrying that SQLSTATE."""
    with pytest.raises(asyncpg.PostgresError) as caught:
        await conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$")
    return caught.value


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("08000", Unavailable),  # connection_exception
        ("08006", Unavailable),  # connection_failure
        ("57P01", Unavailable),  # admin_shutdown
        ("57P02", Unavailable),  # crash_shutdown
        ("57P03", Unavailable),  # cannot_connect_now
        ("53000", Unavailable),  # insufficient_resources
        ("53300", Unavailable),  # too_many_connections
        ("57014", Unavailable),  # query_canceled (statement timeout)
        ("40001", Conflict),  # serialization_failure
        ("40P01", Conflict),  # deadlock_detected
        ("22012", None),  # division_by_zero: a bug
        ("42P01", None),  # undefined_table: a bug
        ("23505", None),  # unique_violation Spool does not expect: a bug
    ],
)
async def test_sqlstates_are_classified(db: asyncpg.Connection, sqlstate: str, expected: type | None) -> None:
    err = await _raised(db, sqlstate)
    found = classify(err)
    if expected is None:
        assert found is None
    else:
        assert type(found) is expected, found
        assert found.reason == ("TRANSIENT_CONFLICT" if expected is Conflict else "DATABASE_UNAVAILABLE")


async def test_bad_query_arguments_are_a_bug_not_an_outage(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.DataError) as caught:
        await db.fetchval("SELECT $1::integer", "not a number")
    assert classify(caught.value) is None  # INTERNAL, logged: retrying cannot help


async def test_a_check_constraint_names_its_field(db: asyncpg.Connection) -> None:
    job_id = await db.fetchval("SELECT spool.enqueue('q', '{}')")
    with pytest.raises(InvalidArgument) as caught, translated():
        await db.execute("UPDATE spool.jobs SET run_at = '-infinity' WHERE id = $1", job_id)
    assert caught.value.field == "run_at"


async def test_a_terminated_connection_is_unavailable(db_url: str, db: asyncpg.Connection) -> None:
    pool = await create_pool(db_url, 1, 1)
    try:
        # The connection is held while its backend is terminated: back in the pool, a connection
        # already seen closed is replaced on the next acquire without an error to look at.
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            assert await terminate(db) == 1
            with pytest.raises(Unavailable):  # whichever driver error comes first
                async with asyncio.timeout(10):
                    while True:
                        with translated():
                            await conn.fetchval("SELECT 1")
        with translated():
            assert await pool.fetchval("SELECT 1") == 1  # a new connection
    finally:
        await pool.close()


async def test_a_terminated_connection_whose_socket_is_still_open_is_unavailable(
    proxy: FaultProxy, db: asyncpg.Connection
) -> None:
    """The backend is gone and its FATAL error read, but the socket has not closed yet: asyncpg then
    raises InternalClientError ("cannot switch to state ..."), which is an outage too."""
    pool = await create_pool(proxy.url, 1, 1)
    try:
        await pool.fetchval("SELECT 1")
        await kill_held_connection(proxy, db)
        with pytest.raises(Unavailable) as caught, translated():
            await pool.fetchval("SELECT 1")
        assert isinstance(caught.value.__cause__, asyncpg.InternalClientError)
        proxy.release()
        with translated():
            assert await pool.fetchval("SELECT 1") == 1
    finally:
        proxy.release()
        await pool.close()


@pytest.fixture
async def proxied_app(proxy: FaultProxy) -> AsyncIterator[App]:
    """spoold with one pooled connection, through the proxy; no loop touches the pool by itself."""
    quiet = timedelta(hours=1)  # every loop that would use the one connection by itself
    settings = conftest.test_settings(
        pool_min_size=1, pool_max_size=1, watch_poll_interval=quiet, counts_interval=quiet, bulk_interval=quiet
    )
    app = App(settings, proxy.url)
    await app.start()
    try:
        yield app
    finally:
        proxy.release()
        await app.stop()


@pytest.mark.parametrize("rpc", ["GetJob", "Enqueue"])
async def test_a_call_on_a_terminated_connection_answers_unavailable(
    proxied_app: App, proxy: FaultProxy, db: asyncpg.Connection, rpc: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxied_app.port}") as channel:
        stub = queue_service_pb2_grpc.QueueServiceStub(channel)
        job = (await stub.Enqueue(enqueue_request("q"))).job
        await kill_held_connection(proxy, db)
        call = stub.GetJob(qs.GetJobRequest(job_id=job.id)) if rpc == "GetJob" else stub.Enqueue(enqueue_request("q"))
        await expect_error(call, grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
        proxy.release()
        assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.id == job.id  # and it recovers


def test_domain_errors_pass_through_untouched() -> None:
    err = Unavailable("x")
    with pytest.raises(SpoolError) as caught, translated():
        raise err
    assert caught.value is err
