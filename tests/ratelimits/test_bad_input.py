"""Bad rate limits are refused with INVALID_ARGUMENT naming the field, and write nothing."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.helpers import expect_error
from tests.ratelimits.support import rate

BAD: list[tuple[str, job_pb2.RateLimit, str]] = [
    ("a rate of 0", job_pb2.RateLimit(limit=0), "limit"),
    ("a negative rate", job_pb2.RateLimit(limit=-5), "limit"),
    ("a rate too high", job_pb2.RateLimit(limit=1_000_001), "limit"),
    ("an interval of 0", job_pb2.RateLimit(limit=1, interval=Duration()), "interval"),
    ("a negative interval", job_pb2.RateLimit(limit=1, interval=Duration(seconds=-1)), "interval"),
    ("an interval under 1 s", job_pb2.RateLimit(limit=1, interval=Duration(nanos=500_000_000)), "interval"),
    ("an interval over a day", job_pb2.RateLimit(limit=1, interval=Duration(seconds=86401)), "interval"),
    ("a burst of 0", job_pb2.RateLimit(limit=1, burst=0), "burst"),
    ("a negative burst", job_pb2.RateLimit(limit=1, burst=-3), "burst"),
    ("a burst too high", job_pb2.RateLimit(limit=1, burst=1_000_001), "burst"),
]
IDS = [case for case, _, _ in BAD]


@pytest.mark.parametrize(("case", "limit", "field"), BAD, ids=IDS)
async def test_enqueue_refuses(
    stub: QueueServiceStub, db: asyncpg.Connection, case: str, limit: job_pb2.RateLimit, field: str
) -> None:
    req = qs.EnqueueRequest(queue="q", payload=b"{}", rate_limit_key="k", rate_limit=limit)
    await expect_error(stub.Enqueue(req), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", f"rate_limit.{field}")
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0


@pytest.mark.parametrize(("case", "limit", "field"), BAD, ids=IDS)
async def test_update_queue_refuses(
    admin: AdminServiceStub, db: asyncpg.Connection, case: str, limit: job_pb2.RateLimit, field: str
) -> None:
    req = adm.UpdateQueueRequest(name="q", rate_limit=limit)
    await expect_error(
        admin.UpdateQueue(req), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", f"rate_limit.{field}"
    )
    assert await db.fetchval("SELECT count(*) FROM spool.queues") == 0


async def test_a_key_needs_its_limit_and_a_limit_its_key(stub: QueueServiceStub, db: asyncpg.Connection) -> None:
    for req, field in [
        (qs.EnqueueRequest(queue="q", payload=b"{}", rate_limit_key="stripe"), "rate_limit"),
        (qs.EnqueueRequest(queue="q", payload=b"{}", rate_limit=rate(5)), "rate_limit_key"),
        (qs.EnqueueRequest(queue="q", payload=b"{}", rate_limit_key="k" * 300, rate_limit=rate(5)), "rate_limit_key"),
    ]:
        await expect_error(stub.Enqueue(req), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    batch = qs.EnqueueBatchRequest(
        jobs=[
            qs.EnqueueRequest(queue="q", payload=b"{}"),
            qs.EnqueueRequest(queue="q", payload=b"{}", rate_limit=rate(0)),
        ]
    )
    await expect_error(
        stub.EnqueueBatch(batch), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "jobs[1].rate_limit.limit"
    )
    assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 0
