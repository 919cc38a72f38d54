"""ListJobs keyset paging: every job exactly once, in order, whatever the page size or order."""

from __future__ import annotations

import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.search.rows import insert

NEWEST, OLDEST = qs.ListJobsRequest.ORDER_NEWEST_FIRST, qs.ListJobsRequest.ORDER_OLDEST_FIRST


async def walk(stub, request: qs.ListJobsRequest) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Follows next_page_token to the end; returns the ids seen and the number of pages."""
    seen: list[str] = []
    pages = 0
    while True:
        reply = await stub.ListJobs(request)
        pages += 1
        assert len(reply.jobs) <= request.page_size
        seen.extend(j.id for j in reply.jobs)
        if not reply.next_page_token:
            return seen, pages
        assert len(reply.jobs) == request.page_size  # only the last page may be short
        request.page_token = reply.next_page_token


@pytest.mark.parametrize("page_size", [1000, 333])
@pytest.mark.parametrize("order", [NEWEST, OLDEST])
async def test_ten_thousand_jobs_without_gaps_or_repeats(stub, db, page_size: int, order: int) -> None:  # type: ignore[no-untyped-def]
    made = await insert(db, 10_000)
    seen, pages = await walk(stub, qs.ListJobsRequest(order=order, page_size=page_size))  # type: ignore[arg-type]
    expected = made if order == OLDEST else made[::-1]
    assert seen == expected  # no gap, no repeat, in order
    assert pages == -(-10_000 // page_size)


async def test_paging_a_filtered_search(stub, db) -> None:  # type: ignore[no-untyped-def]
    wanted = []
    for _ in range(5):
        wanted += await insert(db, 200, queue="mail", state="dead", error_type="Timeout")
        await insert(db, 300, queue="mail", state="succeeded")
    f = job_pb2.JobFilter(queues=["mail"], error_contains="timeout")
    seen, pages = await walk(stub, qs.ListJobsRequest(filter=f, order=OLDEST, page_size=333))
    assert seen == wanted
    assert pages == 4


async def test_jobs_added_while_paging_do_not_disturb_the_walk(stub, db) -> None:  # type: ignore[no-untyped-def]
    made = await insert(db, 100)
    first = await stub.ListJobs(qs.ListJobsRequest(order=NEWEST, page_size=40))
    await insert(db, 25)  # newer than the walk's start: a newest-first keyset walk never sees them
    rest, _ = await walk(stub, qs.ListJobsRequest(order=NEWEST, page_size=40, page_token=first.next_page_token))
    assert [j.id for j in first.jobs] + rest == made[::-1]


async def test_exact_multiple_ends_with_an_empty_token(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 20)
    reply = await stub.ListJobs(qs.ListJobsRequest(page_size=20))
    assert len(reply.jobs) == 20
    assert reply.next_page_token == ""
