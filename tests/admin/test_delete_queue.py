"""AdminService.DeleteQueue: a queue made by mistake can go, and no unfinished job ever goes with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.store import queues
from tests.helpers import enqueue_request, expect_error
from tests.search.rows import add_attempt, insert


@pytest.fixture
async def admin(channel: grpc.aio.Channel) -> AsyncIterator[AdminServiceStub]:
    yield AdminServiceStub(channel)


async def names(admin: AdminServiceStub) -> list[str]:
    return [q.name for q in (await admin.ListQueues(adm.ListQueuesRequest())).queues]


async def test_a_queue_with_settings_only_is_deleted(admin: AdminServiceStub) -> None:
    await admin.PauseQueue(adm.PauseQueueRequest(name="typo"))
    reply = await admin.DeleteQueue(adm.DeleteQueueRequest(name="typo"))
    assert reply.deleted_jobs == 0 and await names(admin) == []
    await expect_error(admin.GetQueue(adm.GetQueueRequest(name="typo")), grpc.StatusCode.NOT_FOUND, "QUEUE_NOT_FOUND")
    # Deleting it again: there is nothing left to delete.
    await expect_error(
        admin.DeleteQueue(adm.DeleteQueueRequest(name="typo")), grpc.StatusCode.NOT_FOUND, "QUEUE_NOT_FOUND"
    )


async def test_finished_jobs_need_force_then_go_with_their_attempts(
    admin: AdminServiceStub, stub: QueueServiceStub, db: asyncpg.Connection
) -> None:
    done = await insert(db, 2, queue="old", state="succeeded") + await insert(db, 1, queue="old", state="dead")
    await add_attempt(db, done[0])
    kept = await insert(db, 1, queue="other", state="dead")
    err = await expect_error(
        admin.DeleteQueue(adm.DeleteQueueRequest(name="old")), grpc.StatusCode.FAILED_PRECONDITION, "QUEUE_NOT_EMPTY"
    )
    assert "3 finished job(s)" in (err.details() or "")
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'old'") == 3

    reply = await admin.DeleteQueue(adm.DeleteQueueRequest(name="old", force=True))
    assert reply.deleted_jobs == 3 and await names(admin) == ["other"]
    assert await db.fetchval("SELECT count(*) FROM spool.attempts") == 0
    await expect_error(stub.GetJob(qs.GetJobRequest(job_id=done[0])), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    assert (await stub.GetJob(qs.GetJobRequest(job_id=kept[0]))).job.state == job_pb2.Job.STATE_DEAD


async def test_unfinished_jobs_refuse_even_a_forced_delete(
    admin: AdminServiceStub, stub: QueueServiceStub, db: asyncpg.Connection
) -> None:
    await insert(db, 2, queue="busy", state="dead")
    await stub.Enqueue(enqueue_request("busy"))
    await stub.Enqueue(enqueue_request("busy"))
    await stub.Lease(qs.LeaseRequest(queues=["busy"], max_jobs=1))
    err = await expect_error(
        admin.DeleteQueue(adm.DeleteQueueRequest(name="busy", force=True)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "QUEUE_NOT_EMPTY",
    )
    assert "1 ready and 1 running job(s)" in (err.details() or "")
    # Nothing was deleted, not even the finished jobs.
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE queue = 'busy'") == 4


async def test_a_forced_delete_works_in_batches(
    admin: AdminServiceStub, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queues, "DELETE_BATCH", 2)
    await insert(db, 5, queue="big", state="cancelled")
    reply = await admin.DeleteQueue(adm.DeleteQueueRequest(name="big", force=True))
    assert reply.deleted_jobs == 5 and await names(admin) == []


async def test_a_bad_name_is_refused(admin: AdminServiceStub) -> None:
    await expect_error(
        admin.DeleteQueue(adm.DeleteQueueRequest(name="bad name")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "name",
    )
