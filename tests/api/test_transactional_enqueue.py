"""spool.enqueue() inside the caller's own transaction: the job exists iff that transaction commits."""

from __future__ import annotations

import asyncio

import asyncpg
from google.protobuf.duration_pb2 import Duration

from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.conftest import wait_until


async def test_a_rolled_back_transaction_leaves_no_job(db: asyncpg.Connection) -> None:
    tx = db.transaction()
    await tx.start()
    await db.execute("CREATE TEMP TABLE orders (id int)")
    await db.execute("INSERT INTO orders VALUES (5512)")
    job_id = await db.fetchval("""SELECT spool.enqueue('receipts', '{"order": 5512}'::jsonb)""")
    assert job_id is not None
    await tx.rollback()
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0


async def test_a_committed_job_wakes_a_waiting_lease(stub: QueueServiceStub, db: asyncpg.Connection) -> None:
    waiting = asyncio.ensure_future(
        stub.Lease(qs.LeaseRequest(queues=["receipts"], wait=Duration(seconds=30), worker_id="w"))
    )
    async with db.transaction():
        job_id = await db.fetchval("""SELECT spool.enqueue('receipts', '{"order": 5512}'::jsonb)""")
        # Not visible, so not leasable, before the caller's commit.
        assert not waiting.done()
    leased = await asyncio.wait_for(waiting, 10)
    assert [lj.job.id for lj in leased.jobs] == [str(job_id)]
    assert leased.jobs[0].job.payload == b'{"order": 5512}'


async def test_the_same_key_in_two_transactions_gives_one_job(db_url: str) -> None:
    a = await asyncpg.connect(db_url)
    b = await asyncpg.connect(db_url)
    try:
        sql = """SELECT spool.enqueue('receipts', '{"order": 7}'::jsonb, idempotency_key => 'order-7')"""
        async with a.transaction():
            first = await a.fetchval(sql)
            # b's insert waits for a's commit, then finds a's job instead of making its own.
            second_call = asyncio.ensure_future(b.fetchval(sql))
            b_pid = b.get_server_pid()
            await wait_until(
                lambda: a.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", b_pid)
            )
        second = await asyncio.wait_for(second_call, 10)
        assert first == second
        assert await a.fetchval("SELECT count(*) FROM spool.jobs") == 1
    finally:
        await a.close()
        await b.close()
