"""A refusal that waiting mends carries its delay on every door: a google.rpc.RetryInfo in the
status (gRPC, and the details of Connect and REST error JSON), and the standard Retry-After header
(whole seconds, rounded up) on the HTTP door's 429 and 503 answers, REST and Connect alike. A
refusal that waiting does not mend (an unknown job) has neither."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from tests.helpers import enqueue_request, expect_error
from tests.http.conftest import Answer, curl, http_settings, needs_curl

pytestmark = needs_curl

QUICK = timedelta(milliseconds=200)


def retry_info(err: grpc.aio.AioRpcError) -> float:
    """The RetryInfo delay of a failed gRPC call, in seconds (fails the test if there is none)."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError(f"no RetryInfo in {status}")


async def connect(base: str, method: str, body: dict[str, object]) -> Answer:
    url = f"{base}/spool.v1.QueueService/{method}"
    return await curl("-H", "Content-Type: application/json", "--data-binary", json.dumps(body), url)


def rest_retry_delay(answer: Answer) -> str:
    (info,) = [d for d in answer.json()["error"]["details"] if d["@type"].endswith("RetryInfo")]
    return str(info["retryDelay"])


@pytest.mark.parametrize("settings", [http_settings(search_pool_size=1, search_wait=QUICK)])
async def test_searches_busy_is_429_with_retry_after_and_retry_info(
    app: App, base: str, stub: queue_service_pb2_grpc.QueueServiceStub
) -> None:
    assert app.searches is not None
    async with app.searches.pool.acquire():  # the one search connection, busy
        answer = await connect(base, "ListJobs", {})
        err = await expect_error(
            stub.ListJobs(qs.ListJobsRequest()), grpc.StatusCode.RESOURCE_EXHAUSTED, "SEARCHES_BUSY"
        )
    assert (answer.status, answer.reason) == (429, "SEARCHES_BUSY")
    assert answer.headers["retry-after"] == "1"
    assert retry_info(err) == 1.0


@pytest.mark.parametrize("settings", [http_settings(pool_min_size=1, pool_max_size=1, pool_acquire_timeout=QUICK)])
async def test_a_busy_database_pool_is_503_with_retry_after_and_retry_info(
    app: App, base: str, stub: queue_service_pb2_grpc.QueueServiceStub
) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    assert app.pool is not None
    async with app.pool.acquire():  # the one connection of the main pool, busy
        rest = await curl(f"{base}/v1/jobs/{job.id}")
        connected = await connect(base, "GetJob", {"jobId": job.id})
        err = await expect_error(
            stub.GetJob(qs.GetJobRequest(job_id=job.id)), grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"
        )
    for answer in (rest, connected):
        assert (answer.status, answer.reason) == (503, "DATABASE_UNAVAILABLE")
        assert answer.headers["retry-after"] == "1"
    assert rest_retry_delay(rest) == "1s"
    assert retry_info(err) == 1.0


async def test_a_refusal_that_waiting_does_not_mend_has_no_retry_after(app: App, base: str) -> None:
    rest = await curl(f"{base}/v1/jobs/999999")
    connected = await connect(base, "GetJob", {"jobId": "999999"})
    for answer in (rest, connected):
        assert (answer.status, answer.reason) == (404, "JOB_NOT_FOUND")
        assert "retry-after" not in answer.headers


@pytest.mark.parametrize("settings", [http_settings(max_watchers=1)])
async def test_watchers_past_the_limit_get_a_retry_after_of_seconds(
    app: App, base: str, stub: queue_service_pb2_grpc.QueueServiceStub
) -> None:
    job = (await stub.Enqueue(enqueue_request())).job
    held = stub.WatchJob(qs.WatchJobRequest(job_id=job.id))
    await held.read()  # the one stream slot, held
    rest = await curl(f"{base}/v1/jobs/{job.id}/events")
    err = await expect_error(
        stub.WatchJob(qs.WatchJobRequest(job_id=job.id)).read(),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "WATCHERS_LIMIT_REACHED",
    )
    held.cancel()
    assert (rest.status, rest.reason) == (429, "WATCHERS_LIMIT_REACHED")
    assert rest.headers["retry-after"] == "5"
    assert retry_info(err) == 5.0
