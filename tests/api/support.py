"""Helpers for the API tests: lease one job, move a lease into the past, look at rows behind the API."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.loops import Reaper
from tests.helpers import expect_error

Stub = queue_service_pb2_grpc.QueueServiceStub
Job = job_pb2.Job
Attempt = job_pb2.Attempt


def ms(n: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(milliseconds=n))
    return d


def seconds(n: float) -> Duration:
    return ms(n * 1000)


async def lease_one(stub: Stub, queue: str = "default", **fields: Any) -> qs.LeasedJob:
    """Leases exactly one job from the queue, failing the test if none is ready."""
    fields.setdefault("worker_id", "w1")
    resp = await stub.Lease(qs.LeaseRequest(queues=[queue], max_jobs=1, **fields))
    assert len(resp.jobs) == 1, f"expected one job from {queue!r}, got {len(resp.jobs)}"
    return resp.jobs[0]


async def expire_lease(db: asyncpg.Connection, job_id: str, *, timed_out: bool = False) -> None:
    """Moves a RUNNING job's lease (and with timed_out, its attempt deadline) into the past."""
    if timed_out:
        await db.execute(
            "UPDATE spool.jobs SET lease_expires_at = now() - interval '1 second',"
            " attempt_deadline = now() - interval '1 second' WHERE id = $1 AND state = 'running'",
            int(job_id),
        )
    else:
        await db.execute(
            "UPDATE spool.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1 AND state = 'running'",
            int(job_id),
        )


def reaper(app: App, batch: int = 1000) -> Reaper:
    assert app.store is not None
    return Reaper(app.store, interval=3600, batch=batch)


async def count(db: asyncpg.Connection, table: str = "jobs") -> int:
    value = await db.fetchval(f"SELECT count(*) FROM spool.{table}")
    assert isinstance(value, int)
    return value


async def job_row(db: asyncpg.Connection, job_id: str) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM spool.jobs WHERE id = $1", int(job_id))
    assert row is not None, f"no row for job {job_id}"
    return dict(row)


async def expect_lease_lost(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """A fenced call with a token that no longer holds the lease."""
    return await expect_error(call, grpc.StatusCode.FAILED_PRECONDITION, "LEASE_LOST", "lease_token")
