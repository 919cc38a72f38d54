"""The Python Worker under the server's checkpoint rate limit (SPOOL_CHECKPOINT_MIN_INTERVAL): a
durable step's awaited checkpoint that the server refuses as too soon is sent again after the
RetryInfo delay, so a job of many quick steps completes with every step saved."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import spool
from spool.v1 import queue_service_pb2 as qs
from spoold.config import Settings
from tests.client.conftest import serving
from tests.conftest import test_settings as settings_for_tests
from tests.conftest import wait_until

STEPS = 25


@pytest.fixture
def settings() -> Settings:
    return settings_for_tests(checkpoint_min_interval=timedelta(milliseconds=50))


async def test_a_refused_checkpoint_raises_with_the_servers_retry_delay(client: spool.AsyncClient) -> None:
    await client.enqueue("q", {})
    (leased,) = (await client.stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1))).jobs
    beat = qs.HeartbeatRequest(job_id=leased.job.id, lease_token=leased.lease_token, checkpoint=b"{}")
    await client.call(client.stub.Heartbeat, beat)
    with pytest.raises(spool.CheckpointRateLimited) as refused:
        await client.call(client.stub.Heartbeat, beat)
    assert refused.value.reason == "CHECKPOINT_RATE_LIMITED"
    assert refused.value.retry_delay is not None and 0 < refused.value.retry_delay <= 0.05


async def test_many_quick_durable_steps_complete_and_each_is_saved(client: spool.AsyncClient) -> None:
    worker = spool.Worker(client, poll_wait=timedelta(seconds=1))
    saved: list[dict[str, object]] = []

    @worker.handler("steps")
    async def work(job: spool.ActiveJob) -> int:
        total = 0
        for n in range(STEPS):
            total += await job.step(f"s{n}", lambda n=n: n)
            saved.append(dict(job.steps))
        return total

    job = await client.enqueue("steps", {})
    async with serving(worker):

        async def done() -> bool:
            return (await client.get(job.id)).state == spool.v1.job_pb2.Job.STATE_SUCCEEDED

        await wait_until(done, within=30)
    finished = await client.get(job.id)
    assert json.loads(finished.result) == sum(range(STEPS))
    steps = json.loads(finished.checkpoint)["spool.steps"]
    assert steps == {f"s{n}": n for n in range(STEPS)}
    assert [len(s) for s in saved] == list(range(1, STEPS + 1))
