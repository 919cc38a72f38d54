"""ListJobs and Requeue-by-filter refuse bad input with INVALID_ARGUMENT, the reason and the field."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.helpers import expect_error
from tests.search.rows import insert

INVALID = grpc.StatusCode.INVALID_ARGUMENT
REASON = "INVALID_ARGUMENT"


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


async def a_token(stub, db, **request) -> str:  # type: ignore[no-untyped-def]
    await insert(db, 3, queue="a")
    reply = await stub.ListJobs(qs.ListJobsRequest(page_size=1, **request))
    assert reply.next_page_token
    return str(reply.next_page_token)


@pytest.mark.parametrize("page_size", [-1, 1001, 2**31 - 1])
async def test_page_size_out_of_range(stub, page_size: int) -> None:  # type: ignore[no-untyped-def]
    await expect_error(stub.ListJobs(qs.ListJobsRequest(page_size=page_size)), INVALID, REASON, "page_size")


@pytest.mark.parametrize("token", ["garbage", "!!!!", "a" * 600, "é", base64.urlsafe_b64encode(b"x" * 40).decode()])
async def test_garbled_token(stub, token: str) -> None:  # type: ignore[no-untyped-def]
    await expect_error(stub.ListJobs(qs.ListJobsRequest(page_token=token)), INVALID, REASON, "page_token")


async def test_forged_token(stub, db) -> None:  # type: ignore[no-untyped-def]
    token = await a_token(stub, db)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    tag, body = raw[:12], json.loads(raw[12:])
    body["id"] += 1  # move the position, keep the old tag
    forged = base64.urlsafe_b64encode(tag + json.dumps(body, separators=(",", ":")).encode()).decode()
    await expect_error(stub.ListJobs(qs.ListJobsRequest(page_token=forged)), INVALID, REASON, "page_token")
    cut = token[:-3]
    await expect_error(stub.ListJobs(qs.ListJobsRequest(page_token=cut)), INVALID, REASON, "page_token")


async def test_token_from_another_filter_or_order(stub, db) -> None:  # type: ignore[no-untyped-def]
    token = await a_token(stub, db, filter=job_pb2.JobFilter(queues=["a"]))
    other = qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=["b"]), page_token=token)
    await expect_error(stub.ListJobs(other), INVALID, REASON, "page_token")
    unfiltered = qs.ListJobsRequest(page_token=token)
    await expect_error(stub.ListJobs(unfiltered), INVALID, REASON, "page_token")
    reordered = qs.ListJobsRequest(
        filter=job_pb2.JobFilter(queues=["a"]), order=qs.ListJobsRequest.ORDER_OLDEST_FIRST, page_token=token
    )
    await expect_error(stub.ListJobs(reordered), INVALID, REASON, "page_token")
    # The same search goes on, and a different page size is fine.
    same = qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=["a"]), page_size=5, page_token=token)
    assert len((await stub.ListJobs(same)).jobs) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"created_after": ts(2000), "created_before": ts(1000)}, "filter.created_before"),
        ({"finished_after": ts(2000), "finished_before": ts(1999)}, "filter.finished_before"),
        ({"created_after": ts(300_000_000_000)}, "filter.created_after"),
        ({"payload_contains": "{not json"}, "filter.payload_contains"),
        ({"payload_contains": '{"a": "\\u0000"}'}, "filter.payload_contains"),
        ({"payload_contains": '{"a": 1e1000000}'}, "filter.payload_contains"),
        ({"payload_contains": '"\\ud800"'}, "filter.payload_contains"),
        ({"payload_contains": "NaN"}, "filter.payload_contains"),
        ({"error_contains": "nul\x00byte"}, "filter.error_contains"),
        ({"error_contains": "x" * 1025}, "filter.error_contains"),
        ({"queues": ["ok", ""]}, "filter.queues[1]"),
        ({"queues": ["has space"]}, "filter.queues[0]"),
        ({"queues": [f"q{i}" for i in range(1001)]}, "filter.queues"),
        ({"states": [job_pb2.Job.STATE_DEAD, job_pb2.Job.STATE_UNSPECIFIED]}, "filter.states[1]"),
        ({"states": [42]}, "filter.states[0]"),
        ({"idempotency_key": "k" * 257}, "filter.idempotency_key"),
        ({"concurrency_key": "\x00"}, "filter.concurrency_key"),
    ],
)
async def test_bad_filter(stub, fields: dict[str, object], field: str) -> None:  # type: ignore[no-untyped-def]
    f = job_pb2.JobFilter(**fields)  # type: ignore[arg-type]
    await expect_error(stub.ListJobs(qs.ListJobsRequest(filter=f)), INVALID, REASON, field)
    await expect_error(stub.Requeue(qs.RequeueRequest(filter=f)), INVALID, REASON, field)


async def test_unknown_order(stub) -> None:  # type: ignore[no-untyped-def]
    await expect_error(stub.ListJobs(qs.ListJobsRequest(order=7)), INVALID, REASON, "order")  # type: ignore[arg-type]


async def test_requeue_with_both_ids_and_filter(stub, db) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = await insert(db, state="dead")
    both = qs.RequeueRequest(job_ids=[job_id], filter=job_pb2.JobFilter(queues=["q"]))
    await expect_error(stub.Requeue(both), INVALID, REASON, "filter")
    assert await db.fetchval("SELECT state::text FROM spool.jobs WHERE id = $1", int(job_id)) == "dead"


@pytest.mark.parametrize("limit", [-1, 1001])
async def test_requeue_limit_out_of_range(stub, limit: int) -> None:  # type: ignore[no-untyped-def]
    request = qs.RequeueRequest(filter=job_pb2.JobFilter(queues=["q"]), limit=limit)
    await expect_error(stub.Requeue(request), INVALID, REASON, "limit")
