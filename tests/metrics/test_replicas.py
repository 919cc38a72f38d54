"""Two spoold replicas on one database: each counts only what it did (sum them), and both report
the same database-wide gauges (take max, never sum)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import duration_pb2

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from tests.helpers import enqueue_request
from tests.http.conftest import http_settings
from tests.metrics.conftest import scrape


@pytest.fixture
async def replicas(db_url: str) -> AsyncIterator[list[App]]:
    apps = [App(http_settings(), db_url) for _ in range(2)]
    for a in apps:
        await a.start()
    try:
        yield apps
    finally:
        for a in apps:
            await a.stop()


async def test_counters_sum_across_replicas_and_gauges_agree(replicas: list[App]) -> None:
    for app, n in zip(replicas, (3, 2), strict=True):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = queue_service_pb2_grpc.QueueServiceStub(ch)
            for _ in range(n):
                await stub.Enqueue(enqueue_request("shared"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replicas[1].port}") as ch:
        lease = qs.LeaseRequest(
            queues=["shared"], max_jobs=1, worker_id="w", lease_duration=duration_pb2.Duration(seconds=30)
        )
        assert len((await queue_service_pb2_grpc.QueueServiceStub(ch).Lease(lease)).jobs) == 1
    a, b = [await scrape(app) for app in replicas]
    enqueued = [m.get("spool_job_events_total", queue="shared", event="enqueued") for m in (a, b)]
    assert enqueued == [3, 2] and sum(enqueued) == 5
    assert [m.get("spool_job_events_total", queue="shared", event="leased") for m in (a, b)] == [0, 1]
    for status, n in (("ready", 4), ("running", 1)):
        assert a.get("spool_queue_jobs", queue="shared", status=status) == n
        assert b.get("spool_queue_jobs", queue="shared", status=status) == n
