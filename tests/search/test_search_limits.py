"""Searches cannot starve the hot path: ListJobs, Requeue by filter and queue stats run on a pool of
their own with a statement timeout of their own (DEADLINE_EXCEEDED, SEARCH_TIMEOUT), a search that
finds that pool busy is answered RESOURCE_EXHAUSTED, SEARCHES_BUSY, Enqueue, Lease and Ack go on
meanwhile, and the costliest filters are bounded in length."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.api.search import MAX_ERROR_CONTAINS, MAX_PAYLOAD_CONTAINS, MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS
from spoold.app import App
from spoold.config import Settings
from tests import conftest
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error
from tests.search.rows import insert

INVALID = grpc.StatusCode.INVALID_ARGUMENT
Call = Callable[[], Awaitable[Any]]


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(
        search_pool_size=1, search_timeout=timedelta(seconds=3), search_wait=timedelta(milliseconds=200)
    )


@pytest.fixture
def admin(channel: grpc.aio.Channel) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(channel)


def searches(stub: Any, admin: Any, f: job_pb2.JobFilter) -> dict[str, Call]:
    return {
        "ListJobs": lambda: stub.ListJobs(qs.ListJobsRequest(filter=f)),
        "Requeue": lambda: stub.Requeue(qs.RequeueRequest(filter=f)),
        "ListQueues": lambda: admin.ListQueues(adm.ListQueuesRequest()),
        "GetQueue": lambda: admin.GetQueue(adm.GetQueueRequest(name="q")),
    }


@pytest.mark.parametrize("method", ["ListJobs", "Requeue"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_contains", "x" * (MAX_ERROR_CONTAINS + 1)),
        ("payload_contains", json.dumps({"a": "x" * MAX_PAYLOAD_CONTAINS})),
        ("payload_contains", json.dumps({"a": list(range(MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS + 1))})),
        ("payload_contains", json.dumps({"a": [[i] for i in range(MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS // 2 + 1)]})),
    ],
)
async def test_the_costliest_filters_are_bounded(stub, admin, db, method: str, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    call = searches(stub, admin, job_pb2.JobFilter(**{field: value}))[method]
    await expect_error(call(), INVALID, "INVALID_ARGUMENT", f"filter.{field}")


async def test_filters_at_the_bounds_are_served(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 1, state="dead", payload=json.dumps({"a": list(range(40))}), error_message="x" * 300)
    at_bounds = job_pb2.JobFilter(
        error_contains="x" * MAX_ERROR_CONTAINS,
        payload_contains=json.dumps({"a": list(range(MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS))}),
    )
    assert len((await stub.ListJobs(qs.ListJobsRequest(filter=at_bounds))).jobs) == 1


@pytest.fixture
async def jobs_locked(app: App, db: asyncpg.Connection, db_url: str) -> AsyncIterator[None]:
    """spool.jobs locked against every reader by another session, once the server is up and until
    before it stops: any search waits, and runs out its time."""
    await insert(db, 1, state="dead", error_message="boom")
    holder = await asyncpg.connect(db_url)
    tx = holder.transaction()
    await tx.start()
    await holder.execute("LOCK TABLE spool.jobs IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await holder.close()


@pytest.mark.usefixtures("jobs_locked")
@pytest.mark.parametrize("method", ["ListJobs", "Requeue", "ListQueues", "GetQueue"])
async def test_a_search_past_its_timeout_is_deadline_exceeded(stub, admin, method: str) -> None:  # type: ignore[no-untyped-def]
    call = searches(stub, admin, job_pb2.JobFilter(error_contains="boom"))[method]
    err = await expect_error(call(), grpc.StatusCode.DEADLINE_EXCEEDED, "SEARCH_TIMEOUT")
    assert "SPOOL_SEARCH_TIMEOUT" in (err.details() or "")


async def test_a_flood_of_searches_leaves_the_hot_path_alone(app: App, stub, admin, db) -> None:  # type: ignore[no-untyped-def]
    """One search runs (a 256-character pattern tried at every position of 400 errors of 60,000
    characters: about 50 ms a row here, far longer than its 3 s), the next ones find the one search
    connection busy, and meanwhile a job goes through Enqueue, Lease and Ack."""
    await insert(db, 400, state="dead", error_type="Error", error_message="aab " + "a" * 60_000)
    # The queue exists before the flood: a new queue is counted against SPOOL_MAX_QUEUES, and that
    # count runs on the search connections (queue_limit.py).
    await stub.Enqueue(enqueue_request("hot"))
    slow = job_pb2.JobFilter(error_contains="a" * (MAX_ERROR_CONTAINS - 1) + "b")
    first = asyncio.ensure_future(stub.ListJobs(qs.ListJobsRequest(filter=slow)))

    async def searching() -> bool:
        query = """SELECT count(*) FROM pg_stat_activity
            WHERE state = 'active' AND application_name = 'spoold' AND query LIKE '%ILIKE%'"""
        return bool(await db.fetchval(query) == 1)

    await wait_until(searching, within=10)
    for call in searches(stub, admin, slow).values():
        await expect_error(call(), grpc.StatusCode.RESOURCE_EXHAUSTED, "SEARCHES_BUSY")
    await stub.Enqueue(enqueue_request("hot"))
    leased = await stub.Lease(qs.LeaseRequest(queues=["hot"], max_jobs=1))
    await stub.Ack(qs.AckRequest(job_id=leased.jobs[0].job.id, lease_token=leased.jobs[0].lease_token))
    assert await searching(), "the search had ended: the hot path's calls did not run beside it"
    await expect_error(first, grpc.StatusCode.DEADLINE_EXCEEDED, "SEARCH_TIMEOUT")
    assert len((await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=["hot"])))).jobs) == 2
