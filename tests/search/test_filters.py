"""ListJobs: each filter on its own, combined, and the shape of what comes back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.helpers import enqueue_request
from tests.search.rows import add_attempt, insert

State = job_pb2.Job


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


async def ids(stub, **filter_fields) -> list[str]:  # type: ignore[no-untyped-def]
    """Every matching id, oldest first, in one page."""
    order = qs.ListJobsRequest.ORDER_OLDEST_FIRST
    reply = await stub.ListJobs(
        qs.ListJobsRequest(filter=job_pb2.JobFilter(**filter_fields), order=order, page_size=1000)
    )
    assert reply.next_page_token == ""
    return [j.id for j in reply.jobs]


async def test_no_filter_lists_everything_newest_first(stub, db) -> None:  # type: ignore[no-untyped-def]
    made = await insert(db, 3, queue="a") + await insert(db, 2, queue="b", state="dead")
    reply = await stub.ListJobs(qs.ListJobsRequest())
    assert [j.id for j in reply.jobs] == made[::-1]
    assert reply.next_page_token == ""


async def test_queues(stub, db) -> None:  # type: ignore[no-untyped-def]
    a = await insert(db, 2, queue="a")
    await insert(db, 2, queue="b")
    c = await insert(db, 1, queue="c")
    assert await ids(stub, queues=["a", "c"]) == a + c
    assert await ids(stub, queues=["nope"]) == []


async def test_states(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 2, state="pending")
    running = await insert(db, 1, state="running")
    dead = await insert(db, 2, state="dead")
    await insert(db, 1, state="succeeded")
    cancelled = await insert(db, 1, state="cancelled")
    assert await ids(stub, states=[State.STATE_DEAD, State.STATE_CANCELLED]) == dead + cancelled
    assert await ids(stub, states=[State.STATE_RUNNING]) == running


async def test_created_range_is_half_open(stub, db) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    old = await insert(db, created_at=t0)
    mid = await insert(db, created_at=t0 + timedelta(hours=1))
    new = await insert(db, created_at=t0 + timedelta(hours=2))
    assert await ids(stub, created_after=ts(t0 + timedelta(hours=1))) == mid + new
    assert await ids(stub, created_before=ts(t0 + timedelta(hours=1))) == old
    window = {"created_after": ts(t0), "created_before": ts(t0 + timedelta(hours=2))}
    assert await ids(stub, **window) == old + mid
    # An empty range is a search that finds nothing, not an error.
    assert await ids(stub, created_after=ts(t0), created_before=ts(t0)) == []


async def test_finished_range(stub, db) -> None:  # type: ignore[no-untyped-def]
    # Recent enough that the server's pruner (7 days for SUCCEEDED) keeps both rows.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    await insert(db, state="pending")  # not finished: never in a finished range
    early = await insert(db, state="dead", finished_at=t0)
    late = await insert(db, state="succeeded", finished_at=t0 + timedelta(days=1))
    assert await ids(stub, finished_after=ts(t0 + timedelta(hours=1))) == late
    assert await ids(stub, finished_before=ts(t0 + timedelta(hours=1))) == early
    assert await ids(stub, finished_after=ts(t0 - timedelta(days=1))) == early + late


async def test_error_contains_matches_type_or_message_ignoring_case(stub, db) -> None:  # type: ignore[no-untyped-def]
    smtp = await insert(db, state="dead", error_type="SMTPTimeout", error_message="no answer")
    msg = await insert(db, state="pending", error_type="IOError", error_message="smtp server went away")
    await insert(db, state="dead", error_type="KeyError", error_message="'order_id'")
    await insert(db, 3, state="succeeded")  # no error at all
    assert await ids(stub, error_contains="SmTp") == smtp + msg
    assert await ids(stub, error_contains="went AWAY") == msg
    assert await ids(stub, error_contains="nothing like it") == []


async def test_error_contains_takes_wildcards_literally(stub, db) -> None:  # type: ignore[no-untyped-def]
    pct = await insert(db, state="dead", error_type="Quota", error_message="disk 100% full")
    await insert(db, state="dead", error_type="Quota", error_message="disk 1000 full")
    under = await insert(db, state="dead", error_type="Quota", error_message="bad a_b value")
    await insert(db, state="dead", error_type="Quota", error_message="bad axb value")
    slash = await insert(db, state="dead", error_type="Path", error_message="C:\\temp missing")
    assert await ids(stub, error_contains="100%") == pct
    assert await ids(stub, error_contains="a_b") == under
    assert await ids(stub, error_contains="c:\\t") == slash


async def test_error_contains_finds_a_nacked_job(stub) -> None:  # type: ignore[no-untyped-def]
    enq = await stub.Enqueue(enqueue_request("mail", {"to": "ada@example.com"}))
    lj = (await stub.Lease(qs.LeaseRequest(queues=["mail"]))).jobs[0]
    error = job_pb2.JobError(type="SMTPError", message="550 mailbox unavailable")
    await stub.Nack(qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token, error=error))
    found = await ids(stub, error_contains="MAILBOX", states=[State.STATE_DEAD])
    assert found == [enq.job.id]


async def test_payload_contains(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, payload=json.dumps({"order_id": 5511, "kind": "receipt"}))
    hit = await insert(db, payload=json.dumps({"order_id": 5512, "kind": "receipt", "to": {"email": "a@b.c"}}))
    await insert(db, payload=json.dumps({"order_id": 5512, "kind": "invoice"}))
    await insert(db, payload=json.dumps([1, 2, 3]))
    assert await ids(stub, payload_contains='{"order_id": 5512, "kind": "receipt"}') == hit
    assert await ids(stub, payload_contains='{"to": {"email": "a@b.c"}}') == hit
    assert await ids(stub, payload_contains='{"order_id": "5512"}') == []  # jsonb compares types


async def test_payload_contains_skips_binary_payloads(stub) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(qs.EnqueueRequest(queue="raw", payload=b'{"a": 1}', content_type="application/octet-stream"))
    js = await stub.Enqueue(enqueue_request("raw", {"a": 1}))
    assert await ids(stub, payload_contains='{"a": 1}') == [js.job.id]


async def test_idempotency_and_concurrency_keys(stub, db) -> None:  # type: ignore[no-untyped-def]
    keyed = await insert(db, queue="a", idempotency_key="receipt-5512")
    other_queue = await insert(db, queue="b", idempotency_key="receipt-5512")
    await insert(db, queue="a", idempotency_key="receipt-5513")
    limited = await insert(db, 2, concurrency_key="tenant-7")
    await insert(db, 1, concurrency_key="tenant-8")
    assert await ids(stub, idempotency_key="receipt-5512") == keyed + other_queue
    assert await ids(stub, idempotency_key="receipt-5512", queues=["b"]) == other_queue
    assert await ids(stub, concurrency_key="tenant-7") == limited


async def test_filters_combine(stub, db) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    want = await insert(db, queue="mail", state="dead", error_type="Timeout", created_at=t0)
    await insert(db, queue="mail", state="dead", error_type="Timeout", created_at=t0 - timedelta(days=2))
    await insert(db, queue="sms", state="dead", error_type="Timeout", created_at=t0)
    await insert(db, queue="mail", state="cancelled", error_type="Timeout", created_at=t0)
    await insert(db, queue="mail", state="dead", error_type="Refused", created_at=t0)
    found = await ids(
        stub,
        queues=["mail"],
        states=[State.STATE_DEAD],
        error_contains="timeout",
        created_after=ts(t0 - timedelta(hours=1)),
    )
    assert found == want


async def test_results_leave_out_attempts(stub, db) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = await insert(db, state="dead", error_type="Boom")
    await add_attempt(db, job_id)
    listed = (await stub.ListJobs(qs.ListJobsRequest())).jobs
    assert [j.id for j in listed] == [job_id]
    assert listed[0].last_error.type == "Boom"
    assert listed[0].state == State.STATE_DEAD
    assert len(listed[0].attempts) == 0
    got = await stub.GetJob(qs.GetJobRequest(job_id=job_id))
    assert len(got.job.attempts) == 1


async def test_default_page_size_is_50(stub, db) -> None:  # type: ignore[no-untyped-def]
    await insert(db, 51)
    first = await stub.ListJobs(qs.ListJobsRequest(page_size=0))
    assert len(first.jobs) == 50
    assert first.next_page_token
    rest = await stub.ListJobs(qs.ListJobsRequest(page_token=first.next_page_token))
    assert len(rest.jobs) == 1
    assert rest.next_page_token == ""
