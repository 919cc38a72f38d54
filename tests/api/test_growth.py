"""Unbounded growth, bounded: ListQueues in pages, a cap on the number of queues, a job's attempts
in pages (GetJob), and releases that count as attempts once a job has had its free ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

import spool
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spoold.config import Limits
from tests.api.support import Attempt, Job, Stub, lease_one, seconds
from tests.conftest import test_settings as make_settings
from tests.helpers import enqueue_request, expect_error

EXHAUSTED, INVALID = grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
async def admin(channel: grpc.aio.Channel) -> AsyncIterator[AdminServiceStub]:
    yield AdminServiceStub(channel)


async def test_list_queues_pages_through_every_queue(stub: Stub, admin: AdminServiceStub) -> None:
    names = [f"q{i}" for i in range(5)]
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request(n) for n in names[1:]]))
    await admin.PauseQueue(adm.PauseQueueRequest(name="q0"))  # a queue with settings and no jobs
    everything = await admin.ListQueues(adm.ListQueuesRequest())
    assert [q.name for q in everything.queues] == names and not everything.next_page_token
    seen, token, pages = [], "", 0
    while True:
        page = await admin.ListQueues(adm.ListQueuesRequest(page_size=2, page_token=token))
        seen += [q.name for q in page.queues]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == names and pages == 3
    assert [q.stats.ready for q in everything.queues] == [0, 1, 1, 1, 1]
    assert everything.queues[0].paused


async def test_list_queues_refuses_a_bad_page(admin: AdminServiceStub) -> None:
    await expect_error(
        admin.ListQueues(adm.ListQueuesRequest(page_token="junk")), INVALID, "INVALID_ARGUMENT", "page_token"
    )
    await expect_error(
        admin.ListQueues(adm.ListQueuesRequest(page_size=1001)), INVALID, "INVALID_ARGUMENT", "page_size"
    )


@pytest.mark.parametrize("settings", [make_settings(limits=Limits(max_queues=3))])
async def test_a_new_queue_past_the_cap_is_refused_and_nothing_is_enqueued(stub: Stub, db: asyncpg.Connection) -> None:
    for name in ("a", "b", "c"):
        await stub.Enqueue(enqueue_request(name))
    err = await expect_error(stub.Enqueue(enqueue_request("d")), EXHAUSTED, "QUEUE_LIMIT_REACHED", "queue")
    assert "SPOOL_MAX_QUEUES" in (err.details() or "")
    batch = qs.EnqueueBatchRequest(jobs=[enqueue_request("a"), enqueue_request("e")])
    await expect_error(stub.EnqueueBatch(batch), EXHAUSTED, "QUEUE_LIMIT_REACHED", "jobs.queue")
    await stub.Enqueue(enqueue_request("a"))  # existing queues still take jobs
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("b"), enqueue_request("c")]))
    counts = {r["queue"]: r["n"] for r in await db.fetch("SELECT queue, count(*) AS n FROM spool.jobs GROUP BY 1")}
    assert counts == {"a": 2, "b": 2, "c": 2}


async def add_attempts(db: asyncpg.Connection, job_id: str, n: int) -> None:
    """n finished attempts in the job's history, as n failed runs would leave them."""
    await db.execute(
        "INSERT INTO spool.attempts (job_id, lease_token, number, worker_id, started_at, finished_at, outcome)"
        " SELECT $1, t, t, 'w', now(), now(), 'failed' FROM generate_series(1, $2) AS t",
        int(job_id),
        n,
    )


async def test_get_job_returns_the_latest_attempts_and_pages_the_rest(stub: Stub, db: asyncpg.Connection) -> None:
    job_id = (await stub.Enqueue(enqueue_request("q"))).job.id
    await add_attempts(db, job_id, 250)
    latest = await stub.GetJob(qs.GetJobRequest(job_id=job_id))
    assert latest.job.attempts_total == 250 and len(latest.job.attempts) == 100
    assert [a.number for a in latest.job.attempts] == list(range(151, 251))
    numbers, token = [a.number for a in latest.job.attempts], latest.next_attempts_page_token
    while token:
        older = await stub.GetJob(qs.GetJobRequest(job_id=job_id, attempts_page_size=70, attempts_page_token=token))
        numbers = [a.number for a in older.job.attempts] + numbers
        token = older.next_attempts_page_token
    assert numbers == list(range(1, 251))


async def test_the_running_attempt_is_the_latest(stub: Stub, db: asyncpg.Connection) -> None:
    job_id = (await stub.Enqueue(enqueue_request("q"))).job.id
    await add_attempts(db, job_id, 3)
    await db.execute("SELECT setval('spool.lease_token_seq', 100)")
    await lease_one(stub, "q")
    got = await stub.GetJob(qs.GetJobRequest(job_id=job_id, attempts_page_size=2))
    assert got.job.attempts_total == 4
    assert [a.outcome for a in got.job.attempts] == [Attempt.OUTCOME_FAILED, Attempt.OUTCOME_UNSPECIFIED]
    rest = await stub.GetJob(qs.GetJobRequest(job_id=job_id, attempts_page_token=got.next_attempts_page_token))
    assert [a.number for a in rest.job.attempts] == [1, 2] and not rest.next_attempts_page_token


async def test_an_attempts_token_is_bound_to_its_job(stub: Stub, db: asyncpg.Connection) -> None:
    one = (await stub.Enqueue(enqueue_request("q"))).job.id
    other = (await stub.Enqueue(enqueue_request("q"))).job.id
    await add_attempts(db, one, 3)
    token = (await stub.GetJob(qs.GetJobRequest(job_id=one, attempts_page_size=1))).next_attempts_page_token
    assert token
    bad = qs.GetJobRequest(job_id=other, attempts_page_token=token)
    await expect_error(stub.GetJob(bad), INVALID, "INVALID_ARGUMENT", "attempts_page_token")
    junk = qs.GetJobRequest(job_id=one, attempts_page_token="x" * 40)
    await expect_error(stub.GetJob(junk), INVALID, "INVALID_ARGUMENT", "attempts_page_token")
    await expect_error(
        stub.GetJob(qs.GetJobRequest(job_id=one, attempts_page_size=-1)),
        INVALID,
        "INVALID_ARGUMENT",
        "attempts_page_size",
    )


@pytest.mark.parametrize("settings", [make_settings(limits=Limits(max_releases=3))])
async def test_past_the_free_releases_a_release_counts_as_an_attempt(stub: Stub) -> None:
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=2))).job.id
    for _ in range(3):
        held = await lease_one(stub, "q")
        released = await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=held.lease_token, release=True))
        assert released.job.state == Job.STATE_PENDING and released.job.attempt == 0
    held = await lease_one(stub, "q")
    counted = await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=held.lease_token, release=True))
    assert counted.job.attempt == 1 and counted.job.last_error.type == "ReleaseLimit"
    await stub.Nack(
        qs.NackRequest(
            job_id=job_id, lease_token=(await lease_one(stub, "q", wait=seconds(5))).lease_token, release=True
        )
    )
    job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
    assert job.state == Job.STATE_DEAD and job.attempts_total == 5
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_RELEASED] * 3 + [Attempt.OUTCOME_FAILED] * 2


async def test_the_client_reads_every_page_of_queues(stub: Stub, client: spool.AsyncClient) -> None:
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request(f"q{i:04}") for i in range(1000)]))
    await stub.Enqueue(enqueue_request("z"))
    names = [q.name for q in await client.queues()]
    assert len(names) == 1001 and names[-1] == "z" and names == sorted(names)
