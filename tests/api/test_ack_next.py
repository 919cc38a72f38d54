"""Ack and AckBatch with `next`: the ack, then a lease of what is ready, in one call."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Job, Stub, expect_lease_lost, job_row, lease_one, seconds
from tests.helpers import enqueue_request, expect_error


async def states(db: asyncpg.Connection, queue: str) -> dict[str, int]:
    found = await db.fetch("SELECT state, count(*) AS n FROM spool.jobs WHERE queue = $1 GROUP BY state", queue)
    return {r["state"]: r["n"] for r in found}


async def test_ack_with_next_hands_over_the_next_job_in_the_same_call(stub: Stub, db: asyncpg.Connection) -> None:
    ids = [(await stub.Enqueue(enqueue_request("q", {"n": n}))).job.id for n in range(3)]
    held = await lease_one(stub, "q", worker_id="w1")
    seen = [held.job.id]
    for _ in range(2):
        resp = await stub.Ack(
            qs.AckRequest(
                job_id=held.job.id,
                lease_token=held.lease_token,
                result=b'{"ok": true}',
                next=qs.LeaseRequest(queues=["q"], worker_id="w2", lease_duration=seconds(90)),
            )
        )
        assert resp.job.id == held.job.id and resp.job.state == Job.STATE_SUCCEEDED
        assert resp.job.result == b'{"ok": true}'
        (held,) = resp.next
        assert held.job.state == Job.STATE_RUNNING and held.job.attempt == 1 and held.job.worker_id == "w2"
        assert held.lease_expires_at.seconds - resp.job.finished_at.seconds in range(89, 92)
        seen.append(held.job.id)
    assert seen == ids

    last = await stub.Ack(
        qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token, next=qs.LeaseRequest(queues=["q"]))
    )
    assert last.job.state == Job.STATE_SUCCEEDED and list(last.next) == []
    assert await states(db, "q") == {"succeeded": 3}
    attempt = (await stub.GetJob(qs.GetJobRequest(job_id=ids[1]))).job.attempts[0]
    assert attempt.worker_id == "w2" and attempt.lease_token == str((await job_row(db, ids[1]))["lease_token"])


async def test_ack_batch_with_next_leases_in_claim_order_from_its_queues(stub: Stub, db: asyncpg.Connection) -> None:
    first = [(await stub.Enqueue(enqueue_request("a"))).job.id for _ in range(2)]
    low = (await stub.Enqueue(enqueue_request("a", priority=-1))).job.id
    high = (await stub.Enqueue(enqueue_request("a", priority=5))).job.id
    other = (await stub.Enqueue(enqueue_request("b"))).job.id
    leased = (await stub.Lease(qs.LeaseRequest(queues=["a"], max_jobs=2))).jobs
    assert [lj.job.id for lj in leased] == [high, first[0]]

    resp = await stub.AckBatch(
        qs.AckBatchRequest(
            acks=[qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in leased],
            next=qs.LeaseRequest(queues=["a"], max_jobs=10),
        )
    )
    assert [r.job_id for r in resp.results] == [high, first[0]] and not any(r.HasField("error") for r in resp.results)
    assert [lj.job.id for lj in resp.next] == [first[1], low]
    assert all(lj.job.state == Job.STATE_RUNNING and lj.lease_token for lj in resp.next)
    assert (await job_row(db, other))["state"] == "pending"

    done = await stub.AckBatch(
        qs.AckBatchRequest(acks=[qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in resp.next])
    )
    assert not any(r.HasField("error") for r in done.results) and list(done.next) == []
    assert await states(db, "a") == {"succeeded": 4}


async def test_refused_ack_leases_nothing(stub: Stub, db: asyncpg.Connection) -> None:
    for _ in range(2):
        await stub.Enqueue(enqueue_request("q"))
    held = await lease_one(stub, "q")
    await stub.Ack(qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token))
    again = qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token, next=qs.LeaseRequest(queues=["q"]))
    await expect_lease_lost(stub.Ack(again))
    assert await states(db, "q") == {"succeeded": 1, "pending": 1}


async def test_ack_batch_leases_even_when_some_acks_are_refused(stub: Stub) -> None:
    for _ in range(3):
        await stub.Enqueue(enqueue_request("q"))
    held = await lease_one(stub, "q")
    resp = await stub.AckBatch(
        qs.AckBatchRequest(
            acks=[
                qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token),
                qs.AckRequest(job_id=held.job.id, lease_token=str(int(held.lease_token) + 1000)),
            ],
            next=qs.LeaseRequest(queues=["q"], max_jobs=2),
        )
    )
    assert not resp.results[0].HasField("error") and resp.results[1].error.reason == "LEASE_LOST"
    assert len(resp.next) == 2


async def test_bad_next_is_refused_before_the_ack(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue_request("q"))
    held = await lease_one(stub, "q")
    ack = {"job_id": held.job.id, "lease_token": held.lease_token}
    bad = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(
        stub.Ack(qs.AckRequest(**ack, next=qs.LeaseRequest(queues=["q"], wait=seconds(1)))),
        bad,
        "INVALID_ARGUMENT",
        "next.wait",
    )
    await expect_error(stub.Ack(qs.AckRequest(**ack, next=qs.LeaseRequest())), bad, "INVALID_ARGUMENT", "next.queues")
    await expect_error(
        stub.AckBatch(qs.AckBatchRequest(acks=[qs.AckRequest(**ack)], next=qs.LeaseRequest(queues=["q"], max_jobs=-1))),
        bad,
        "INVALID_ARGUMENT",
        "next.max_jobs",
    )
    await expect_error(
        stub.AckBatch(qs.AckBatchRequest(acks=[qs.AckRequest(**ack, next=qs.LeaseRequest(queues=["q"]))])),
        bad,
        "INVALID_ARGUMENT",
        "acks[0].next",
    )
    assert (await job_row(db, held.job.id))["state"] == "running"


async def test_failed_ack_batch_leases_nothing(stub: Stub, db: asyncpg.Connection) -> None:
    """Acks that fail as a whole (the database refusing the update) fail the call and lease nothing."""
    await stub.Enqueue(enqueue_request("a"))
    held = await lease_one(stub, "a")
    for _ in range(3):
        await stub.Enqueue(enqueue_request("b"))
    await db.execute(
        """CREATE FUNCTION public.no_success() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'no space left' USING ERRCODE = 'disk_full'; END $$;
           CREATE TRIGGER no_success BEFORE UPDATE ON spool.jobs FOR EACH ROW
               WHEN (NEW.state = 'succeeded') EXECUTE FUNCTION public.no_success()"""
    )
    ack = qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.AckBatch(qs.AckBatchRequest(acks=[ack], next=qs.LeaseRequest(queues=["b"], max_jobs=3)))
    assert await states(db, "a") == {"running": 1}
    assert await states(db, "b") == {"pending": 3}
    assert await db.fetchval("SELECT count(*) FROM spool.attempts") == 0
