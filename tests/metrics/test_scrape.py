"""A scripted run through a real spoold (gRPC and HTTP), then a scrape that must show it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
import httpx
from google.protobuf import duration_pb2

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.loops import Reaper
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error
from tests.metrics.conftest import scrape

Q = "metered"


async def _lease(stub: queue_service_pb2_grpc.QueueServiceStub, n: int, lease: float = 30) -> list[qs.LeasedJob]:
    answer = await stub.Lease(
        qs.LeaseRequest(queues=[Q], max_jobs=n, worker_id="w", lease_duration=duration_pb2.Duration(seconds=int(lease)))
    )
    return list(answer.jobs)


async def test_a_scripted_run_is_counted(app: App, stub: queue_service_pb2_grpc.QueueServiceStub) -> None:
    for i in range(6):
        await stub.Enqueue(enqueue_request(Q, {"i": i}, max_attempts=3 if i == 2 else 1))
    await stub.Enqueue(enqueue_request(Q, idempotency_key="k"))
    await stub.Enqueue(enqueue_request(Q, idempotency_key="k"))  # deduplicated
    leased = await _lease(stub, 4)
    assert len(leased) == 4
    by_payload = {json.loads(j.job.payload)["i"]: j for j in leased}
    for i in (0, 1):
        await stub.Ack(qs.AckRequest(job_id=by_payload[i].job.id, lease_token=by_payload[i].lease_token))
    retried, dead = by_payload[2], by_payload[3]
    error = job_pb2.JobError(type="Boom", message="boom")
    await stub.Nack(qs.NackRequest(job_id=retried.job.id, lease_token=retried.lease_token, error=error))
    await stub.Nack(qs.NackRequest(job_id=dead.job.id, lease_token=dead.lease_token, error=error))
    # Of the 3 left PENDING (i=4, i=5 and the keyed one), one is cancelled and one leased for a second, to expire.
    pending = [j for j in range(6) if j not in by_payload]
    assert len(pending) == 2
    short = await _lease(stub, 1, lease=1)
    assert len(short) == 1
    reaper = next(loop for loop in app.loops if isinstance(loop, Reaper))
    await wait_until(reaper.run_once, within=15, interval=0.2)
    await expect_error(stub.GetJob(qs.GetJobRequest(job_id="999999")), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    async with httpx.AsyncClient() as http:
        posted = await http.post(f"http://127.0.0.1:{app.http_port}/v1/queues/{Q}/jobs", json={"payload": {"x": 1}})
        assert posted.status_code == 202
        missing = await http.get(f"http://127.0.0.1:{app.http_port}/v1/jobs/999999")
        assert missing.status_code == 404
    cancelled = await stub.CancelJob(qs.CancelJobRequest(job_id=posted.json()["jobId"]))
    assert cancelled.job.state == job_pb2.Job.STATE_CANCELLED

    m = await scrape(app)
    events = {
        e: m.get("spool_job_events_total", queue=Q, event=e)
        for e in ("enqueued", "deduplicated", "leased", "succeeded", "failed", "dead", "cancelled", "lease_expired")
    }
    assert events == {
        "enqueued": 8,  # 6 + the keyed one + the REST one
        "deduplicated": 1,
        "leased": 5,
        "succeeded": 2,
        "failed": 1,  # the nacked job with attempts left
        "dead": 2,  # the nacked one without, and the expired one (max_attempts 1)
        "cancelled": 1,
        "lease_expired": 1,
    }
    assert m.get("spool_pickup_lag_seconds_count", queue=Q) == 5
    assert m.get("spool_attempt_duration_seconds_count", queue=Q, outcome="succeeded") == 2
    assert m.get("spool_attempt_duration_seconds_count", queue=Q, outcome="failed") == 2
    assert m.get("spool_attempt_duration_seconds_count", queue=Q, outcome="lease_expired") == 1
    rpc = "spool_rpc_duration_seconds_count"
    service = "spool.v1.QueueService"
    assert m.get(rpc, door="grpc", service=service, method="Enqueue", code="OK") == 8
    assert m.get(rpc, door="grpc", service=service, method="Ack", code="OK") == 2
    assert m.get(rpc, door="grpc", service=service, method="GetJob", code="NOT_FOUND") == 1
    assert m.get(rpc, door="http", service=service, method="Enqueue", code="OK") == 1
    assert m.get(rpc, door="http", service=service, method="GetJob", code="NOT_FOUND") == 1
    assert m.get("spool_loop_runs_total", loop="reaper") >= 1
    assert m.get("spool_loop_last_success_timestamp_seconds", loop="reaper") > 0
    assert m.get("spool_db_pool_max") == app.settings.pool_max_size


async def test_every_metric_is_documented(app: App, stub: queue_service_pb2_grpc.QueueServiceStub) -> None:
    await stub.Enqueue(enqueue_request(Q))
    await _lease(stub, 1)
    m = await scrape(app)
    doc = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in m.names() if n.startswith("spool_")}
    assert "spool_job_events_total" in names and "spool_pickup_lag_seconds" in names
    missing = sorted(n for n in names if f"`{n}`" not in doc and f"`{n}` (" not in doc)
    assert not missing, f"docs/observability.md does not describe {missing}"
