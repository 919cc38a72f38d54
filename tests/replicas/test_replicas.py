"""Two real `spoold` processes on one database: leases never shared, watchers see changes made
through the other replica, and the two reapers never handle one expired lease twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from spool.v1.pipeline_service_pb2_grpc import PipelineServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.conftest import wait_until
from tests.helpers import enqueue_request

State = job_pb2.Job.State


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spoold_command() -> list[str]:
    script = Path(sys.executable).with_name("spoold")
    return [str(script)] if script.exists() else [shutil.which("spoold") or "spoold"]


def secs(n: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=n))
    return d


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    channel: grpc.aio.Channel
    stub: QueueServiceStub


def start_process(db_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPOOL_DATABASE_URL": db_url,
        "SPOOL_PORT": str(port),
        "SPOOL_HOST": "127.0.0.1",
        "SPOOL_REAPER_INTERVAL": "0.2",
        "SPOOL_WATCH_POLL_INTERVAL": "1",
        "SPOOL_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(spoold_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def serving(channel: grpc.aio.Channel) -> bool:
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
    except grpc.aio.AioRpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def terminate(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@pytest.fixture
def processes(db_url: str) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    started = []
    try:
        for _ in range(2):
            port = free_port()
            started.append((start_process(db_url, port), port))
        yield started
    finally:
        codes = [terminate(p) for p, _ in started]
        assert codes == [0] * len(started), [p.stderr.read().decode()[-2000:] for p, _ in started if p.stderr]


@pytest.fixture
async def replicas(processes: list[tuple[subprocess.Popen[bytes], int]]) -> AsyncIterator[list[Replica]]:
    out = []
    try:
        for process, port in processes:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            out.append(Replica(process, port, channel, QueueServiceStub(channel)))
        for r in out:
            await wait_until(lambda r=r: serving(r.channel), within=30, interval=0.1)  # type: ignore[misc]
        yield out
    finally:
        for r in out:
            await r.channel.close()
        for r in out:
            assert r.process.poll() is None, "a replica died during the test"


async def test_workers_on_both_replicas_never_share_a_lease(replicas: list[Replica], db: asyncpg.Connection) -> None:
    total = 400
    for start in range(0, total, 100):
        batch = [enqueue_request("split", {"n": n}) for n in range(start, start + 100)]
        await replicas[0].stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=batch))
    leased: list[tuple[int, str]] = []

    async def worker(index: int, replica: Replica) -> None:
        while len(leased) < total:
            got = await replica.stub.Lease(
                qs.LeaseRequest(queues=["split"], max_jobs=7, wait=secs(0.3), worker_id=f"w{index}")
            )
            leased.extend((index % 2, lj.job.id) for lj in got.jobs)
            acks = [qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in got.jobs]
            if acks:
                answer = await replica.stub.AckBatch(qs.AckBatchRequest(acks=acks))
                assert not [r for r in answer.results if r.HasField("error")]

    await asyncio.wait_for(asyncio.gather(*(worker(i, replicas[i % 2]) for i in range(8))), 60)
    ids = [job_id for _, job_id in leased]
    assert len(ids) == total and len(set(ids)) == total  # every job leased exactly once
    assert {side for side, _ in leased} == {0, 1}  # both replicas handed out leases
    states = await db.fetch("SELECT state, count(*) AS n FROM spool.jobs GROUP BY state")
    assert [(r["state"], r["n"]) for r in states] == [("succeeded", total)]
    assert await db.fetchval("SELECT count(*) FROM spool.attempts") == total


async def test_watcher_on_one_replica_sees_acks_made_through_the_other(replicas: list[Replica]) -> None:
    watcher, worker = replicas[0].stub, replicas[1].stub
    job = (await worker.Enqueue(enqueue_request("watched"))).job
    call = watcher.WatchJob(qs.WatchJobRequest(job_id=job.id))
    first = await call.read()
    assert isinstance(first, qs.WatchJobResponse) and first.job.state == State.STATE_PENDING
    (lj,) = (await worker.Lease(qs.LeaseRequest(queues=["watched"]))).jobs
    await worker.Ack(qs.AckRequest(job_id=job.id, lease_token=lj.lease_token, result=b'{"done":true}'))
    states = []
    while (msg := await call.read()) is not grpc.aio.EOF:
        assert isinstance(msg, qs.WatchJobResponse)
        states.append(msg.job.state)
    assert states[-1] == State.STATE_SUCCEEDED
    assert set(states) <= {State.STATE_RUNNING, State.STATE_SUCCEEDED}
    assert await call.code() == grpc.StatusCode.OK


async def test_two_reapers_never_double_handle_a_lease(replicas: list[Replica], db: asyncpg.Connection) -> None:
    total = 200
    # A long backoff: a reaped job waits until the next round makes it due, so no round leases it twice.
    backoff = job_pb2.BackoffPolicy(initial_interval=secs(3600))
    batch = [enqueue_request("reaped", {"n": n}, max_attempts=5, backoff=backoff) for n in range(total)]
    await replicas[0].stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=batch))

    async def expire_all(round_: int) -> None:
        """Lease every job through either replica for 200 ms and abandon it; both reapers race."""
        held = 0
        while held < total:
            for r in replicas:
                got = await r.stub.Lease(qs.LeaseRequest(queues=["reaped"], max_jobs=50, lease_duration=secs(0.2)))
                held += len(got.jobs)

        async def reaped() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM spool.attempts") == total * round_)

        await wait_until(reaped, within=30, interval=0.1)

    for round_ in (1, 2):
        await db.execute("UPDATE spool.jobs SET run_at = now()")
        await expire_all(round_)
        per_job = await db.fetch(
            "SELECT count(*) AS n, count(*) FILTER (WHERE outcome = 'lease_expired') AS expired "
            "FROM spool.attempts GROUP BY job_id"
        )
        assert len(per_job) == total and {(r["n"], r["expired"]) for r in per_job} == {(round_, round_)}
        jobs = await db.fetch("SELECT DISTINCT state, attempt FROM spool.jobs")
        assert [(r["state"], r["attempt"]) for r in jobs] == [("pending", round_)]


async def test_a_pipeline_watcher_on_one_replica_sees_steps_worked_through_the_other(replicas: list[Replica]) -> None:
    pipes = PipelineServiceStub(replicas[0].channel)
    worker = replicas[1].stub
    steps = [
        ps.StepSpec(name="a", job=enqueue_request("piped")),
        ps.StepSpec(name="b", depends_on=["a"], job=enqueue_request("piped")),
    ]
    p = (
        await PipelineServiceStub(replicas[1].channel).EnqueuePipeline(ps.EnqueuePipelineRequest(name="x", steps=steps))
    ).pipeline
    call = pipes.WatchPipeline(ps.WatchPipelineRequest(pipeline_id=p.id))
    first = await call.read()
    assert isinstance(first, ps.WatchPipelineResponse) and first.snapshot
    for _ in range(2):
        (lj,) = (await worker.Lease(qs.LeaseRequest(queues=["piped"]))).jobs
        await worker.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    finals: dict[str, int] = {}
    last = first.pipeline
    while (msg := await call.read()) is not grpc.aio.EOF:
        assert isinstance(msg, ps.WatchPipelineResponse)
        finals.update({s.name: s.job.state for s in msg.pipeline.steps})
        last = msg.pipeline
    assert finals == {"a": State.STATE_SUCCEEDED, "b": State.STATE_SUCCEEDED}
    assert last.state == ps.Pipeline.STATE_SUCCEEDED
    assert await call.code() == grpc.StatusCode.OK
