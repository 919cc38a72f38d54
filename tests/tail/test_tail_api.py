"""TailJobs on one server: filters, every bad filter refused naming its field, and a reader that
does not read keeps a bounded mailbox and is told how many events it missed."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from tests import conftest
from tests.api.support import Stub, seconds
from tests.conftest import wait_until
from tests.helpers import enqueue_request

Kind = qs.JobEvent


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(tail_buffer=8)


async def _next(call: Any) -> qs.TailJobsResponse:
    message = await asyncio.wait_for(call.read(), 20)
    assert isinstance(message, qs.TailJobsResponse)
    return message


async def _tailing(app: App) -> None:
    assert app.tail is not None
    tail = app.tail
    await wait_until(lambda: _true(tail.streams > 0), within=20)


async def _true(value: bool) -> bool:
    return value


async def test_events_in_order_filtered_by_queue_kind_and_error(app: App, stub: Stub) -> None:
    want = qs.TailJobsRequest(queues=["mail"], kinds=[Kind.KIND_STARTED, Kind.KIND_DEAD], error_contains="FULL")
    call = stub.TailJobs(want)
    everything = stub.TailJobs(qs.TailJobsRequest())
    try:
        await _tailing(app)
        await asyncio.sleep(0)
        job = (await stub.Enqueue(enqueue_request("mail", {}))).job
        await stub.Enqueue(enqueue_request("other", {}))
        (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["mail"], wait=seconds(5)))).jobs
        error = job_pb2.JobError(type="SMTPError", message="Mailbox full")
        await stub.Nack(qs.NackRequest(job_id=job.id, lease_token=leased.lease_token, error=error))
        got = await _next(call)
        assert (got.event.job_id, got.event.kind, got.event.state) == (job.id, Kind.KIND_DEAD, job_pb2.Job.STATE_DEAD)
        assert got.event.error.message == "Mailbox full" and got.missed == 0
        kinds = [(await _next(everything)).event.kind for _ in range(4)]
        assert kinds == [Kind.KIND_ENQUEUED, Kind.KIND_ENQUEUED, Kind.KIND_STARTED, Kind.KIND_DEAD]
    finally:
        call.cancel()
        everything.cancel()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (qs.TailJobsRequest(kinds=[99]), "kinds[0]"),
        (qs.TailJobsRequest(kinds=[Kind.KIND_UNSPECIFIED]), "kinds[0]"),
        (qs.TailJobsRequest(states=[job_pb2.Job.STATE_DEAD, 42]), "states[1]"),
        (qs.TailJobsRequest(queues=["ok", "has space"]), "queues[1]"),
        (qs.TailJobsRequest(queues=["x" * 500]), "queues[0]"),
        (qs.TailJobsRequest(error_contains="a\x00b"), "error_contains"),
        (qs.TailJobsRequest(error_contains="e" * 5000), "error_contains"),
        (qs.TailJobsRequest(kinds=[Kind.KIND_DEAD] * 17), "kinds"),
    ],
)
async def test_a_bad_filter_is_refused_naming_its_field(stub: Stub, request_: qs.TailJobsRequest, field: str) -> None:
    call = stub.TailJobs(request_)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _next(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_a_reader_that_does_not_read_keeps_a_bounded_mailbox(app: App, stub: Stub) -> None:
    call = stub.TailJobs(qs.TailJobsRequest(queues=["flood"]))
    try:
        await _tailing(app)
        for _ in range(30):
            await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("flood", {})] * 100))
        assert app.tail is not None
        (mailbox,) = app.tail.mailboxes()
        # 3,000 events: what the transport does not buffer is dropped from the mailbox, oldest first.
        await wait_until(lambda: _true(mailbox.coalesced >= 1000), within=30)
        assert len(mailbox) <= 8
        first = await _next(call)
        assert first.missed > 0  # the stream is told what it lost
    finally:
        call.cancel()
