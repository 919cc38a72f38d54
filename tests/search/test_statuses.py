"""ListJobs and Requeue by derived status (ready, scheduled, retrying, ...), filtered in the database
so that pages stay full and page tokens stay bound to their search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.helpers import expect_error
from tests.search.rows import insert

Job = job_pb2.Job
OLDEST = qs.ListJobsRequest.ORDER_OLDEST_FIRST


async def ids(stub, **filter_fields) -> list[str]:  # type: ignore[no-untyped-def]
    reply = await stub.ListJobs(
        qs.ListJobsRequest(filter=job_pb2.JobFilter(**filter_fields), order=OLDEST, page_size=1000)
    )
    return [j.id for j in reply.jobs]


async def one_of_each(db) -> dict[int, list[str]]:  # type: ignore[no-untyped-def]
    later = datetime.now(UTC) + timedelta(hours=1)
    return {
        Job.STATUS_READY: await insert(db, 2),
        Job.STATUS_SCHEDULED: await insert(db, 1, run_at=later),
        # Retrying whether its backoff is over or not.
        Job.STATUS_RETRYING: await insert(db, 1, attempt=1) + await insert(db, 1, attempt=2, run_at=later),
        Job.STATUS_RUNNING: await insert(db, 1, state="running", attempt=1),
        Job.STATUS_SUCCEEDED: await insert(db, 1, state="succeeded", attempt=1),
        Job.STATUS_DEAD: await insert(db, 2, state="dead", attempt=1),
        Job.STATUS_CANCELLED: await insert(db, 1, state="cancelled"),
    }


async def test_each_status_finds_exactly_its_jobs(stub, db) -> None:  # type: ignore[no-untyped-def]
    made = await one_of_each(db)
    for status, expected in made.items():
        assert await ids(stub, statuses=[status]) == expected, Job.Status.Name(status)


async def test_statuses_are_any_of_and_combine_with_other_fields(stub, db) -> None:  # type: ignore[no-untyped-def]
    made = await one_of_each(db)
    other_queue = await insert(db, 1, queue="other", attempt=1)
    wanted = [Job.STATUS_RETRYING, Job.STATUS_DEAD]
    assert await ids(stub, statuses=wanted) == sorted(
        made[Job.STATUS_RETRYING] + made[Job.STATUS_DEAD] + other_queue, key=int
    )
    assert await ids(stub, statuses=wanted, queues=["other"]) == other_queue
    # With states as well, both must match: PENDING and dead match nothing together.
    assert await ids(stub, statuses=[Job.STATUS_DEAD], states=[Job.STATE_PENDING]) == []


async def test_pages_stay_full_and_tokens_stay_bound(stub, db) -> None:  # type: ignore[no-untyped-def]
    retrying: list[str] = []
    for _ in range(7):  # retrying jobs among many ready ones
        await insert(db, 5)
        retrying += await insert(db, 1, attempt=1)
    flt = job_pb2.JobFilter(statuses=[Job.STATUS_RETRYING])
    seen: list[str] = []
    sizes: list[int] = []
    token = ""
    while True:
        page = await stub.ListJobs(qs.ListJobsRequest(filter=flt, order=OLDEST, page_size=3, page_token=token))
        seen += [j.id for j in page.jobs]
        sizes.append(len(page.jobs))
        token = page.next_page_token
        if not token:
            break
        other = job_pb2.JobFilter(statuses=[Job.STATUS_READY])
        await expect_error(
            stub.ListJobs(qs.ListJobsRequest(filter=other, order=OLDEST, page_size=3, page_token=token)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "page_token",
        )
    assert seen == retrying and sizes == [3, 3, 1]


async def test_an_unknown_status_is_refused_naming_the_valid_ones(stub) -> None:  # type: ignore[no-untyped-def]
    req = qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[Job.STATUS_READY, 42]))  # type: ignore[list-item]
    err = await expect_error(
        stub.ListJobs(req), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "filter.statuses[1]"
    )
    assert "STATUS_RETRYING" in (err.details() or "")
    too_many = qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[Job.STATUS_READY] * 17))
    await expect_error(stub.ListJobs(too_many), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "filter.statuses")


async def test_requeue_by_status(stub, db) -> None:  # type: ignore[no-untyped-def]
    made = await one_of_each(db)
    flt = job_pb2.JobFilter(statuses=[Job.STATUS_DEAD, Job.STATUS_READY])
    reply = await stub.Requeue(qs.RequeueRequest(filter=flt))
    # Only finished jobs are requeued, whatever else the statuses select.
    assert sorted(j.id for j in reply.jobs) == made[Job.STATUS_DEAD]
    assert all(j.state == Job.STATE_PENDING and j.requeues == 1 for j in reply.jobs)
