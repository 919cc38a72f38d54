"""Helpers for the rate-limit tests: queue and key limits, and when jobs started."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import asyncpg
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub


def rate(limit: int, seconds: float = 1, burst: int | None = None) -> job_pb2.RateLimit:
    r = job_pb2.RateLimit(limit=limit, interval=Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
    if burst is not None:
        r.burst = burst
    return r


async def limit_queue(admin: AdminServiceStub, queue: str, limit: job_pb2.RateLimit | None) -> adm.Queue:
    req = adm.UpdateQueueRequest(name=queue, update_mask=FieldMask(paths=["rate_limit"]))
    if limit is not None:
        req.rate_limit.CopyFrom(limit)
    return (await admin.UpdateQueue(req)).queue


def jobs(queue: str, n: int, **fields: object) -> qs.EnqueueBatchRequest:
    return qs.EnqueueBatchRequest(
        jobs=[qs.EnqueueRequest(queue=queue, payload=json.dumps({"i": i}).encode(), **fields) for i in range(n)]  # type: ignore[arg-type]
    )


async def starts(db: asyncpg.Connection, where: str = "true") -> list[datetime]:
    """When each attempt of the matching jobs started (finished attempts and running ones)."""
    rows = await db.fetch(
        f"SELECT a.started_at FROM spool.attempts a JOIN spool.jobs j ON j.id = a.job_id WHERE {where}"
        f" UNION ALL SELECT j.started_at FROM spool.jobs j WHERE j.state = 'running' AND {where}"
    )
    return sorted(r["started_at"] for r in rows)


def most_in_any_window(times: list[datetime], window: timedelta = timedelta(seconds=1)) -> int:
    """The most starts in any closed window of this length."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
