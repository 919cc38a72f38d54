"""Requeue by filter: finished jobs only, at most `limit` a call, callers loop until none come back."""

from __future__ import annotations

import asyncio

import grpc

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.helpers import expect_error
from tests.search.rows import add_attempt, insert

State = job_pb2.Job


async def requeue_all(stub, request: qs.RequeueRequest) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Calls Requeue until it returns nothing; the ids requeued and the number of calls."""
    done: list[str] = []
    calls = 0
    while True:
        calls += 1
        jobs = (await stub.Requeue(request)).jobs
        if not jobs:
            return done, calls
        assert len(jobs) <= (request.limit or 1000)
        done.extend(j.id for j in jobs)


async def states_of(db, queue: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    found = await db.fetch("SELECT state::text, count(*) FROM spool.jobs WHERE queue = $1 GROUP BY 1", queue)
    return {r["state"]: r["count"] for r in found}


async def test_loops_until_every_match_is_requeued(stub, db) -> None:  # type: ignore[no-untyped-def]
    dead = await insert(db, 1500, queue="mail", state="dead", error_type="Timeout")
    cancelled = await insert(db, 700, queue="mail", state="cancelled")
    await insert(db, 300, queue="mail", state="succeeded")
    await insert(db, 200, queue="mail", state="pending")
    await insert(db, 100, queue="mail", state="running")
    await insert(db, 400, queue="sms", state="dead")
    done, calls = await requeue_all(stub, qs.RequeueRequest(filter=job_pb2.JobFilter(queues=["mail"])))
    assert sorted(done, key=int) == dead + cancelled  # each once
    assert calls == 4  # 1000 + 1000 + 200, then an empty answer
    assert await states_of(db, "mail") == {"pending": 2400, "succeeded": 300, "running": 100}
    assert await states_of(db, "sms") == {"dead": 400}


async def test_requeued_jobs_get_a_fresh_budget_and_keep_their_history(stub, db) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = await insert(db, state="dead", error_type="Boom")
    await add_attempt(db, job_id)
    await db.execute("UPDATE spool.jobs SET attempt = 1 WHERE id = $1", int(job_id))
    (job,) = (await stub.Requeue(qs.RequeueRequest(filter=job_pb2.JobFilter(error_contains="boom")))).jobs
    assert job.id == job_id
    assert job.state == State.STATE_PENDING
    assert job.attempt == 0
    assert not job.HasField("finished_at")
    got = await stub.GetJob(qs.GetJobRequest(job_id=job_id))
    assert len(got.job.attempts) == 1
    leased = await stub.Lease(qs.LeaseRequest(queues=["q"]))
    assert [lj.job.id for lj in leased.jobs] == [job_id]


async def test_succeeded_only_on_request(stub, db) -> None:  # type: ignore[no-untyped-def]
    ok = await insert(db, 3, state="succeeded")
    f = job_pb2.JobFilter(states=[State.STATE_SUCCEEDED])
    assert (await stub.Requeue(qs.RequeueRequest(filter=f))).jobs == []
    jobs = (await stub.Requeue(qs.RequeueRequest(filter=f, include_succeeded=True))).jobs
    assert [j.id for j in jobs] == ok


async def test_filter_naming_only_unrequeueable_states_is_empty(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 2, state="pending")
    await insert(db, 2, state="running")
    await insert(db, 2, state="dead")
    f = job_pb2.JobFilter(states=[State.STATE_PENDING, State.STATE_RUNNING])
    reply = await stub.Requeue(qs.RequeueRequest(filter=f, include_succeeded=True))
    assert reply.jobs == []
    assert await states_of(db, "q") == {"pending": 2, "running": 2, "dead": 2}


async def test_limit(stub, db) -> None:  # type: ignore[no-untyped-def]
    dead = await insert(db, 10, state="dead")
    done, calls = await requeue_all(stub, qs.RequeueRequest(filter=job_pb2.JobFilter(), limit=3, all=True))
    assert sorted(done, key=int) == dead
    assert calls == 5


async def test_an_empty_filter_requires_all(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 3, state="dead")
    for request in (
        qs.RequeueRequest(filter=job_pb2.JobFilter()),
        qs.RequeueRequest(filter=job_pb2.JobFilter(), limit=5),
    ):
        err = await expect_error(stub.Requeue(request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "filter")
        assert "set all" in (err.details() or "")
    assert await states_of(db, "q") == {"dead": 3}
    everything = await stub.Requeue(qs.RequeueRequest(all=True))
    assert len(everything.jobs) == 3 and await states_of(db, "q") == {"pending": 3}


async def test_wakes_lease_waiters_of_each_queue(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 2, queue="a", state="dead")
    await insert(db, 1, queue="b", state="cancelled")
    woken: set[str] = set()
    both = asyncio.Event()

    def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        woken.add(payload)
        if woken >= {"a", "b"}:
            both.set()

    await db.add_listener("spool_ready", heard)
    jobs = (await stub.Requeue(qs.RequeueRequest(filter=job_pb2.JobFilter(), all=True))).jobs
    assert len(jobs) == 3
    await asyncio.wait_for(both.wait(), 10)
    assert woken == {"a", "b"}
