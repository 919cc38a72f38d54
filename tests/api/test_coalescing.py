"""Group commit: Lease and Ack calls that arrive while a claim or an ack statement runs are served
together by the next statement, each caller still getting exactly its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import asyncpg
import grpc
import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.model import LeaseRequest
from tests.api.support import Stub, expire_lease, lease_one, reaper, seconds
from tests.conftest import connected, wait_until
from tests.helpers import enqueue_request, expect_error

LOCK_K = "SELECT pg_advisory_lock(1397772107, spool.concurrency_bucket('q', 'k', false))"
UNLOCK_K = "SELECT pg_advisory_unlock(1397772107, spool.concurrency_bucket('q', 'k', false))"
RESULT = b'{"n": 1}'
# spoold's statements of one kind (found by a fragment of their text) waiting on a lock.
WAITING_ON_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = 'spoold' AND wait_event_type = 'Lock' AND strpos(query, $1) > 0"
)
CLAIM, ACK, INSERT = "spool.claim_within", "UPDATE spool.jobs j SET", "nextval('spool.jobs_id_seq')"


@pytest.fixture
async def observer(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Watches pg_stat_activity from outside the test's transaction, whose view of it is frozen."""
    async with connected(db_url) as conn:
        yield conn


async def queued(app: App, calls: int) -> None:
    assert app.store is not None
    store = app.store
    await wait_until(lambda: store.queued == calls)


async def test_lease_calls_waiting_on_a_claim_share_the_next_one(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    # The first claim meets a job under a concurrency key whose lock the test holds, so it blocks
    # in the database while three more Lease calls, each with its own worker and lease, arrive.
    await stub.Enqueue(enqueue_request("q", priority=9, concurrency_key="k", concurrency_limit=1))
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q", priority=p) for p in (3, 2, 1)]))
    await db.execute(LOCK_K)
    first = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1, worker_id="w0")))
    await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, CLAIM))
    leases = {f"w{i}": seconds(10 * i) for i in (1, 2, 3)}
    calls = {
        w: asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1, worker_id=w, lease_duration=d)))
        for w, d in leases.items()
    }
    await queued(app, 3)
    await db.execute(UNLOCK_K)

    (alone,) = (await first).jobs
    assert alone.job.priority == 9 and alone.job.worker_id == "w0"
    got = {w: (await call).jobs for w, call in calls.items()}
    assert all(len(jobs) == 1 for jobs in got.values())
    assert sorted(jobs[0].job.priority for jobs in got.values()) == [1, 2, 3]
    for w, (leased,) in got.items():
        job = leased.job
        assert job.worker_id == w
        granted = job.lease_expires_at.ToDatetime() - job.updated_at.ToDatetime()
        assert granted == leases[w].ToTimedelta()
    # One statement claimed all three: they share its transaction's clock, not the first claim's.
    claimed_at = {jobs[0].job.updated_at.ToDatetime() for jobs in got.values()}
    assert len(claimed_at) == 1 and claimed_at != {alone.job.updated_at.ToDatetime()}


async def test_coalesced_lease_calls_split_a_short_supply_in_arrival_order(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    await stub.Enqueue(enqueue_request("q", priority=9, concurrency_key="k", concurrency_limit=1))
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q") for _ in range(3)]))
    await db.execute(LOCK_K)
    first = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1, worker_id="w0")))
    await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, CLAIM))
    big = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=2, worker_id="big")))
    await queued(app, 1)
    late = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5, worker_id="late")))
    await queued(app, 2)
    await db.execute(UNLOCK_K)
    assert len((await first).jobs) == 1
    assert [j.job.worker_id for j in (await big).jobs] == ["big", "big"]
    assert [j.job.worker_id for j in (await late).jobs] == ["late"]  # what was left: one job


async def test_acks_waiting_on_an_ack_statement_share_the_next_one(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q") for _ in range(4)]))
    held = [await lease_one(stub, "q") for _ in range(4)]
    # The test holds the first job's row lock, so the first Ack blocks in the database.
    async with db.transaction():
        await db.execute("SELECT 1 FROM spool.jobs WHERE id = $1 FOR UPDATE", int(held[0].job.id))
        h = held[0]
        first = asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=h.job.id, lease_token=h.lease_token)))
        await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, ACK))
        acks = [
            asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token, result=RESULT)))
            for j in held[1:3]
        ]
        stale = asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=held[3].job.id, lease_token="1")))
        await queued(app, 3)
    assert (await first).job.state == job_pb2.Job.STATE_SUCCEEDED
    done = [(await a).job for a in acks]
    assert {j.result for j in done} == {RESULT}
    assert len({j.finished_at.ToDatetime() for j in done}) == 1  # one statement finished both
    await expect_error(stale, grpc.StatusCode.FAILED_PRECONDITION, "LEASE_LOST")


async def test_enqueues_waiting_on_an_insert_share_the_next_one(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    async with db.transaction():
        await db.execute("LOCK TABLE spool.jobs IN SHARE MODE")  # inserts wait for it
        first = asyncio.ensure_future(stub.Enqueue(enqueue_request("q", {"n": 0})))
        await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, INSERT))
        later = [asyncio.ensure_future(stub.Enqueue(enqueue_request("q", {"n": n}, priority=n))) for n in (1, 2, 3)]
        await queued(app, 3)
    await first
    jobs = [(await call).job for call in later]
    assert [j.priority for j in jobs] == [1, 2, 3]  # each caller gets its own job back
    assert len({j.id for j in jobs}) == 3
    assert len({j.created_at.ToDatetime() for j in jobs}) == 1  # inserted by one statement


async def test_a_stale_ack_sharing_a_statement_with_the_holders_ack_is_still_refused(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q", max_attempts=2) for _ in range(2)]))
    blocker = await lease_one(stub, "q")
    old = await lease_one(stub, "q", worker_id="zombie")
    await expire_lease(db, old.job.id)
    assert await reaper(app).run_once() == 1
    await db.execute("UPDATE spool.jobs SET run_at = now() WHERE id = $1", int(old.job.id))  # no backoff
    new = await lease_one(stub, "q", worker_id="holder")
    assert new.job.id == old.job.id
    async with db.transaction():
        await db.execute("SELECT 1 FROM spool.jobs WHERE id = $1 FOR UPDATE", int(blocker.job.id))
        first = asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=blocker.job.id, lease_token=blocker.lease_token)))
        await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, ACK))
        stale = asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=old.job.id, lease_token=old.lease_token)))
        fresh = asyncio.ensure_future(stub.Ack(qs.AckRequest(job_id=new.job.id, lease_token=new.lease_token)))
        await queued(app, 2)
    await first
    err = await expect_error(stale, grpc.StatusCode.FAILED_PRECONDITION, "LEASE_LOST")
    assert "leased again" in (err.details() or "")
    assert (await fresh).job.state == job_pb2.Job.STATE_SUCCEEDED


async def test_jobs_claimed_for_a_lease_cancelled_during_its_claim_are_given_back(
    app: App, stub: Stub, db: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    assert app.store is not None
    job = (await stub.Enqueue(enqueue_request("q", concurrency_key="k", concurrency_limit=1))).job
    await db.execute(LOCK_K)
    request = LeaseRequest(queues=("q",), max_jobs=1, lease_duration=None, wait=timedelta(0), worker_id="gone")
    claim = asyncio.create_task(app.store.claim(request))
    await wait_until(lambda: observer.fetchval(WAITING_ON_LOCK, CLAIM))
    claim.cancel()  # the Lease call goes away while its claim is blocked in the database
    with pytest.raises(asyncio.CancelledError):
        await claim
    await db.execute(UNLOCK_K)  # the claim now takes the job, for nobody

    def released() -> Awaitable[object]:
        return db.fetchval("SELECT outcome FROM spool.attempts WHERE job_id = $1", int(job.id))

    await wait_until(released)
    assert await released() == "released"
    again = await lease_one(stub, "q")  # ready at once, and the attempt did not count
    assert again.job.id == job.id and again.job.attempt == 1
