"""A Lease answer never claims more than it can send: the claim stops at the answer's byte budget,
and jobs that an answer could not carry anyway are released without spending an attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.config import Limits, Settings
from tests.api.support import Job, Stub
from tests.conftest import test_settings as make_settings
from tests.conftest import wait_until

MIB = 1024 * 1024
BIG = MIB - 4096  # a job of about 1 MiB, under the payload limit


@pytest.fixture
async def big_stub(app: App) -> AsyncIterator[Stub]:
    """A channel that reads answers as large as the server may send (64 MiB)."""
    options = [("grpc.max_receive_message_length", 64 * MIB), ("grpc.max_send_message_length", 64 * MIB)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=options) as ch:
        yield queue_service_pb2_grpc.QueueServiceStub(ch)


async def enqueue_big(stub: Stub, n: int) -> set[str]:
    ids = set()
    for i in range(n):
        req = qs.EnqueueRequest(queue="big", payload=bytes([i % 256]) * BIG, content_type="application/octet-stream")
        ids.add((await stub.Enqueue(req)).job.id)
    return ids


async def states(db: asyncpg.Connection) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await db.fetch("SELECT state::text, count(*) AS n FROM spool.jobs GROUP BY 1")}


async def test_a_lease_of_70_one_mib_jobs_answers_what_fits_and_loses_none(
    big_stub: Stub, db: asyncpg.Connection
) -> None:
    ids = await enqueue_big(big_stub, 70)
    first = await big_stub.Lease(qs.LeaseRequest(queues=["big"], max_jobs=100, worker_id="w"))
    assert 0 < len(first.jobs) < 70
    assert first.ByteSize() <= Limits().max_message_bytes
    assert await states(db) == {"running": len(first.jobs), "pending": 70 - len(first.jobs)}
    delivered = [j.job.id for j in first.jobs]
    acks = [qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in first.jobs]
    while len(delivered) < 70:
        # The rest through AckBatch's next, under the same budget.
        answer = await big_stub.AckBatch(
            qs.AckBatchRequest(acks=acks, next=qs.LeaseRequest(queues=["big"], max_jobs=100, worker_id="w"))
        )
        assert all(not r.HasField("error") for r in answer.results)
        assert answer.next, "the next jobs come with the acks"
        delivered += [j.job.id for j in answer.next]
        acks = [qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in answer.next]
    await big_stub.AckBatch(qs.AckBatchRequest(acks=acks))
    assert sorted(delivered) == sorted(ids)
    assert await states(db) == {"succeeded": 70}


async def test_ack_next_leaves_room_for_the_acked_job(big_stub: Stub, db: asyncpg.Connection) -> None:
    await enqueue_big(big_stub, 66)
    one = (await big_stub.Lease(qs.LeaseRequest(queues=["big"], max_jobs=1, worker_id="w"))).jobs[0]
    answer = await big_stub.Ack(
        qs.AckRequest(
            job_id=one.job.id,
            lease_token=one.lease_token,
            result=b"r" * BIG,
            result_content_type="application/octet-stream",
            next=qs.LeaseRequest(queues=["big"], max_jobs=100, worker_id="w"),
        )
    )
    assert answer.job.state == Job.STATE_SUCCEEDED and 0 < len(answer.next) < 65
    assert await states(db) == {"succeeded": 1, "running": len(answer.next), "pending": 65 - len(answer.next)}


def small_messages() -> Settings:
    # Messages of 512 KiB: a 1 MiB job passes the claim (a call's first job always does) but no
    # answer can carry it.
    return make_settings(limits=Limits(max_message_bytes=512 * 1024))


@pytest.mark.parametrize("settings", [small_messages()])
async def test_a_job_the_answer_cannot_carry_is_released_without_an_attempt(app: App, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO spool.jobs (queue, payload_bytes, content_type, max_attempts, backoff_kind, backoff_initial,"
        " backoff_max, backoff_multiplier, backoff_jitter, lease_duration)"
        " VALUES ('big', $1, 'application/octet-stream', 1, 'fixed', '1s', '1s', 1, false, '30s')",
        b"x" * (600 * 1024),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = queue_service_pb2_grpc.QueueServiceStub(ch)
        answer = await stub.Lease(qs.LeaseRequest(queues=["big"], max_jobs=5, worker_id="w"))
        assert not answer.jobs

        async def released() -> bool:
            row = await db.fetchrow("SELECT state::text, attempt FROM spool.jobs")
            return row is not None and tuple(row) == ("pending", 0)

        await wait_until(released)
        outcomes = await db.fetch("SELECT outcome::text, error_type FROM spool.attempts")
        assert [tuple(r) for r in outcomes] == [("released", "AnswerTooLarge")]
