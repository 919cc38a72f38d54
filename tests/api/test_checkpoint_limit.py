"""Checkpoints are rate-limited per job (SPOOL_CHECKPOINT_MIN_INTERVAL): one sooner than the
interval after the job's last is refused RESOURCE_EXHAUSTED, CHECKPOINT_RATE_LIMITED, with a
google.rpc.RetryInfo delay; a heartbeat without a checkpoint is never refused by it."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from spool.v1 import queue_service_pb2 as qs
from spoold.checkpoint_limit import CheckpointLimit
from spoold.config import Settings
from tests import conftest
from tests.api.support import Stub, job_row, lease_one
from tests.helpers import enqueue_request

MIN_INTERVAL = 30.0  # longer than any test: the second checkpoint is always too soon


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(checkpoint_min_interval=timedelta(seconds=MIN_INTERVAL))


def _retry_delay(err: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    reasons, delays = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delays.append(retry.retry_delay.ToTimedelta().total_seconds())
    assert reasons == ["CHECKPOINT_RATE_LIMITED"]
    (delay,) = delays
    return delay


async def test_a_tight_loop_of_checkpoints_is_refused_with_a_retry_delay(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    beat = qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token)
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, checkpoint=b'{"n":0}'))
    for _ in range(1, 20):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, checkpoint=b"{}"))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 0 < _retry_delay(refused.value) <= MIN_INTERVAL
        await stub.Heartbeat(beat)  # no checkpoint: never refused by the limit
    assert bytes((await job_row(db, lj.job.id))["checkpoint"]) == b'{"n":0}'


async def test_a_heartbeat_batch_refuses_only_the_early_checkpoint_with_its_delay(
    stub: Stub, db: asyncpg.Connection
) -> None:
    for _ in range(2):
        await stub.Enqueue(enqueue_request("q"))
    a, b = await lease_one(stub, "q"), await lease_one(stub, "q")
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=a.job.id, lease_token=a.lease_token, checkpoint=b"1"))
    out = await stub.HeartbeatBatch(
        qs.HeartbeatBatchRequest(
            heartbeats=[
                qs.HeartbeatRequest(job_id=a.job.id, lease_token=a.lease_token, checkpoint=b"2"),
                qs.HeartbeatRequest(job_id=b.job.id, lease_token=b.lease_token, checkpoint=b"3"),
            ]
        )
    )
    first, second = out.results
    assert first.error.reason == "CHECKPOINT_RATE_LIMITED"
    assert first.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "heartbeats[0].checkpoint" in first.error.message
    assert 0 < first.error.retry_delay.ToTimedelta().total_seconds() <= MIN_INTERVAL
    assert second.HasField("heartbeat")
    assert bytes((await job_row(db, a.job.id))["checkpoint"]) == b"1"
    assert bytes((await job_row(db, b.job.id))["checkpoint"]) == b"3"


def test_the_limit_admits_once_per_interval_and_forgets_jobs_it_no_longer_needs() -> None:
    now = [0.0]
    limit = CheckpointLimit(1.0, clock=lambda: now[0])
    assert limit.admit(1) is None
    now[0] = 0.25
    assert limit.admit(1) == pytest.approx(0.75)
    assert limit.admit(2) is None
    now[0] = 1.0
    assert limit.admit(1) is None
    for job in range(3, 5000):  # one job after another, each done before the next checkpoints
        now[0] += 2.0
        assert limit.admit(job) is None
    assert len(limit) <= 1024, "entries older than the interval are swept"
    assert CheckpointLimit(0).admit(1) is None, "0: no limit"
