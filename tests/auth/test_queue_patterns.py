"""Queue patterns: a key sees and touches only its queues, and a job elsewhere looks missing."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.auth.principal import QueuePatterns
from tests.api.support import job_row
from tests.auth.conftest import bearer, make_key
from tests.helpers import enqueue_request, expect_error

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED


def test_patterns_match_whole_names_with_star_for_any_run() -> None:
    p = QueuePatterns(("emails", "reports-*", "a_b%"))
    assert p.allows("emails") and p.allows("reports-") and p.allows("reports-daily")
    assert not p.allows("emails2") and not p.allows("xreports-1") and not p.allows("a_bc")
    assert p.allows("a_b%") and not p.unrestricted
    assert p.like() == ["emails", "reports-%", "a\\_b\\%"]
    assert QueuePatterns(("*",)).unrestricted and QueuePatterns(("**",)).unrestricted


async def _seed(stub: Any, admin: Any) -> dict[str, str]:
    ids = {}
    for queue in ("emails", "reports-daily", "billing"):
        ids[queue] = (await stub.Enqueue(enqueue_request(queue), metadata=admin)).job.id
    return ids


async def test_a_restricted_key_lists_leases_and_reads_only_its_queues(
    stub: Any, channel: grpc.aio.Channel, db: asyncpg.Connection
) -> None:
    admin = bearer(await make_key(db, ["admin"]))
    ids = await _seed(stub, admin)
    key = bearer(await make_key(db, ["read", "work"], ["emails", "reports-*"]))

    listed = await stub.ListJobs(qs.ListJobsRequest(), metadata=key)
    assert sorted(j.queue for j in listed.jobs) == ["emails", "reports-daily"]
    named = await stub.ListJobs(qs.ListJobsRequest(filter={"queues": ["billing"]}), metadata=key)
    assert list(named.jobs) == []
    queues = await admin_service_pb2_grpc.AdminServiceStub(channel).ListQueues(adm.ListQueuesRequest(), metadata=key)
    assert [q.name for q in queues.queues] == ["emails", "reports-daily"]

    leased = await stub.Lease(qs.LeaseRequest(queues=["emails", "reports-daily"], max_jobs=10), metadata=key)
    assert sorted(j.job.queue for j in leased.jobs) == ["emails", "reports-daily"]
    await expect_error(
        stub.Lease(qs.LeaseRequest(queues=["emails", "billing"]), metadata=key),
        grpc.StatusCode.PERMISSION_DENIED,
        "QUEUE_NOT_ALLOWED",
        "queues[1]",
    )
    assert (await job_row(db, ids["billing"]))["state"] == "pending"


async def test_a_job_in_another_queue_is_answered_as_a_missing_one(stub: Any, db: asyncpg.Connection) -> None:
    admin = bearer(await make_key(db, ["admin"]))
    ids = await _seed(stub, admin)
    billing = (await stub.Lease(qs.LeaseRequest(queues=["billing"]), metadata=admin)).jobs[0]
    key = bearer(await make_key(db, ["read", "work"], ["emails"]))
    missing = str(int(max(ids.values())) + 1000)

    hidden = await expect_error(
        stub.GetJob(qs.GetJobRequest(job_id=ids["billing"]), metadata=key), NOT_FOUND, "JOB_NOT_FOUND"
    )
    absent = await expect_error(stub.GetJob(qs.GetJobRequest(job_id=missing), metadata=key), NOT_FOUND, "JOB_NOT_FOUND")
    assert hidden.details() == (absent.details() or "").replace(missing, ids["billing"])

    ack = qs.AckRequest(job_id=billing.job.id, lease_token=billing.lease_token)
    hidden = await expect_error(stub.Ack(ack, metadata=key), NOT_FOUND, "JOB_NOT_FOUND")
    gone = qs.AckRequest(job_id=missing, lease_token=billing.lease_token)
    absent = await expect_error(stub.Ack(gone, metadata=key), NOT_FOUND, "JOB_NOT_FOUND")
    assert hidden.details() == (absent.details() or "").replace(missing, billing.job.id)
    assert (await job_row(db, billing.job.id))["state"] == "running"

    batch = await stub.AckBatch(qs.AckBatchRequest(acks=[ack]), metadata=key)
    assert batch.results[0].error.reason == "JOB_NOT_FOUND"
    assert (await job_row(db, billing.job.id))["state"] == "running"


async def test_an_ack_asking_for_next_jobs_elsewhere_is_refused_before_it_acks(
    stub: Any, db: asyncpg.Connection
) -> None:
    key = bearer(await make_key(db, ["enqueue", "work"], ["emails"]))
    await stub.Enqueue(enqueue_request("emails"), metadata=key)
    held = (await stub.Lease(qs.LeaseRequest(queues=["emails"]), metadata=key)).jobs[0]
    ack = qs.AckRequest(job_id=held.job.id, lease_token=held.lease_token, next=qs.LeaseRequest(queues=["billing"]))
    await expect_error(
        stub.Ack(ack, metadata=key), grpc.StatusCode.PERMISSION_DENIED, "QUEUE_NOT_ALLOWED", "next.queues[0]"
    )
    assert (await job_row(db, held.job.id))["state"] == "running"


async def test_a_key_limited_to_some_queues_may_not_use_a_global_concurrency_key(
    stub: Any, db: asyncpg.Connection
) -> None:
    key = bearer(await make_key(db, ["enqueue"], ["emails"]))
    scoped = enqueue_request("emails", concurrency_key="smtp")
    made = await stub.Enqueue(scoped, metadata=key)  # a key of its own queue is fine
    shared = enqueue_request("emails", concurrency_key="smtp")
    shared.concurrency_scope = job_pb2.Job.CONCURRENCY_SCOPE_GLOBAL
    await expect_error(stub.Enqueue(shared, metadata=key), DENIED, "GLOBAL_KEY_NOT_ALLOWED", "concurrency_scope")
    batch = qs.EnqueueBatchRequest(jobs=[scoped, shared])
    await expect_error(
        stub.EnqueueBatch(batch, metadata=key), DENIED, "GLOBAL_KEY_NOT_ALLOWED", "jobs[1].concurrency_scope"
    )
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 1 and made.job.id
    admin = bearer(await make_key(db, ["admin"]))
    assert (await stub.Enqueue(shared, metadata=admin)).job.concurrency_scope == job_pb2.Job.CONCURRENCY_SCOPE_GLOBAL
