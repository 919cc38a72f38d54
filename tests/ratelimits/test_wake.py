"""A Lease that waits on a rate-limited queue gets its job when the window opens, not at its next
poll: here the poll interval is 30 s, and the window opens every 0.25 s."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.config import Settings
from tests import conftest
from tests.ratelimits.support import jobs, limit_queue, rate


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(lease_poll_interval=timedelta(seconds=30))


def wait(seconds: float) -> qs.LeaseRequest:
    req = qs.LeaseRequest(max_jobs=10, worker_id="w")
    req.wait.FromTimedelta(timedelta(seconds=seconds))
    return req


async def test_waiters_are_woken_when_a_queue_window_opens(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    await limit_queue(admin, "paced", rate(4))  # one every 0.25 s
    await stub.EnqueueBatch(jobs("paced", 6))
    got: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    while len(got) < 6:
        req = wait(25)
        req.queues.append("paced")
        answer = await stub.Lease(req)
        assert len(answer.jobs) == 1  # never more than the window lets start
        got.append(answer.jobs[0].job.id)
    # Six jobs at 4 per second: well under one 30 s poll interval, however busy the machine.
    assert loop.time() - start < 20


async def test_waiters_are_woken_when_a_key_window_opens(stub: QueueServiceStub) -> None:
    limited = {"rate_limit_key": "partner", "rate_limit": rate(4)}
    await stub.EnqueueBatch(jobs("keyed", 4, **limited))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(4):
        req = wait(25)
        req.queues.append("keyed")
        assert len((await stub.Lease(req)).jobs) == 1
    assert loop.time() - start < 20
