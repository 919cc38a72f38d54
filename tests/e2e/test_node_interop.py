"""Python and Node on one queue: each language's producers, workers and watchers work with the other's."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf import duration_pb2

import spool
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.conftest import wait_until
from tests.helpers import enqueue_request

Job = job_pb2.Job
Attempt = job_pb2.Attempt


def ms(n: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(n)
    return d


async def job_in(stub: QueueServiceStub, job_id: str, state: int) -> Job:
    job: Job | None = None

    async def reached() -> bool:
        nonlocal job
        job = (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job
        return job.state == state

    await wait_until(reached, within=20)
    assert job is not None
    return job


@pytest.fixture
async def python_worker(address: str) -> AsyncIterator[Callable[..., spool.Worker]]:
    """Builds spool.Worker instances that serve in the background until the test ends."""
    running: list[tuple[spool.Worker, asyncio.Task[None], spool.AsyncClient]] = []

    def start(queue: str, handler: Callable[[spool.ActiveJob], Any], **options: Any) -> spool.Worker:
        client = spool.AsyncClient(address)
        worker = spool.Worker(client, [queue], poll_wait=timedelta(milliseconds=500), worker_id="python-e2e", **options)
        worker.handler(queue)(handler)
        running.append((worker, asyncio.create_task(worker.serve()), client))
        return worker

    yield start
    for worker, task, client in running:
        worker.stop()
        await asyncio.wait_for(task, 15)
        await client.close()


async def test_python_enqueues_and_a_node_worker_completes(stub: QueueServiceStub, address: str, node: Any) -> None:
    worker = await node("worker.js", address, "to-node", "--id", "node-e2e")
    await worker.line_where("event", "ready")
    job = (await stub.Enqueue(enqueue_request("to-node", {"do": "echo", "order": 5512}))).job

    done = await job_in(stub, job.id, Job.STATE_SUCCEEDED)

    assert done.result_content_type == "application/json"
    assert json.loads(done.result) == {"by": "node", "worker": "node-e2e", "echo": {"do": "echo", "order": 5512}}
    assert [a.worker_id for a in done.attempts] == ["node-e2e"]
    assert await worker.stop(signal.SIGTERM) == 0


async def test_node_enqueues_and_a_python_worker_completes(
    stub: QueueServiceStub, address: str, node: Any, python_worker: Callable[..., spool.Worker]
) -> None:
    python_worker("to-python", lambda job: {"by": "python", "echo": job.json()})
    producer = await node("cli.js", "enqueue", address, "to-python", json.dumps({"order": 7}))
    job_id = (await producer.line_where("id"))["id"]

    done = await job_in(stub, job_id, Job.STATE_SUCCEEDED)

    assert json.loads(done.result) == {"by": "python", "echo": {"order": 7}}
    assert done.max_attempts == 3, "the options the Node producer set arrive"
    assert [a.worker_id for a in done.attempts] == ["python-e2e"]


async def test_a_node_watch_follows_a_job_worked_in_python(stub: QueueServiceStub, address: str, node: Any) -> None:
    job = (await stub.Enqueue(enqueue_request("watched"))).job
    watcher = await node("cli.js", "watch", address, job.id)
    first = await watcher.next_line()
    if first.get("unimplemented"):
        pytest.skip("this server does not implement WatchJob yet")
    assert first["state"] == "PENDING"

    leased = (await stub.Lease(qs.LeaseRequest(queues=["watched"], worker_id="python-raw"))).jobs[0]
    await watcher.line_where("state", "RUNNING")
    await stub.Heartbeat(qs.HeartbeatRequest(job_id=job.id, lease_token=leased.lease_token, checkpoint=b'{"p":1}'))
    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=leased.lease_token))

    lines = await watcher.rest()
    assert lines[-1]["state"] == "SUCCEEDED", lines
    assert lines[-1]["workerId"] == "" and any(x.get("workerId") == "python-raw" for x in lines), lines
    assert watcher.proc.returncode == 0


async def test_a_node_workers_stale_ack_after_lease_expiry_gets_lease_lost(
    stub: QueueServiceStub, address: str, node: Any
) -> None:
    job = (await stub.Enqueue(enqueue_request("stale", max_attempts=2))).job
    stale = await node("cli.js", "stale-ack", address, "stale")
    await stale.line_where("leased", job.id)
    # The node lease expires, the reaper frees the job, and after its retry backoff it is leased again.
    await job_in(stub, job.id, Job.STATE_PENDING)
    fresh = (
        await stub.Lease(
            qs.LeaseRequest(queues=["stale"], worker_id="python-raw", lease_duration=ms(30_000), wait=ms(10_000))
        )
    ).jobs
    assert [j.job.id for j in fresh] == [job.id]

    refused = await stale.line_where("reason")

    assert refused == {"code": "FailedPrecondition", "reason": "LEASE_LOST"}
    running = (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job
    assert running.state == Job.STATE_RUNNING and running.worker_id == "python-raw", "the stale ack changed nothing"
    await stub.Ack(qs.AckRequest(job_id=job.id, lease_token=fresh[0].lease_token))


async def test_a_python_worker_takes_over_a_job_a_node_worker_abandoned(
    stub: QueueServiceStub, address: str, node: Any, python_worker: Callable[..., spool.Worker]
) -> None:
    worker = await node("worker.js", address, "takeover-py", "--lease-ms", "1500", "--id", "node-crashed")
    await worker.line_where("event", "ready")
    job = (await stub.Enqueue(enqueue_request("takeover-py", {"do": "hold"}, max_attempts=2))).job
    await worker.line_where("event", "started")
    # The Node handler checkpointed {"held": 1}; once a heartbeat has stored it, the worker dies.
    await wait_until(lambda: _has_checkpoint(stub, job.id))
    await worker.stop(signal.SIGKILL)

    seen: list[Any] = []
    python_worker("takeover-py", lambda j: seen.append(j.previous_checkpoint) or "taken over")
    done = await job_in(stub, job.id, Job.STATE_SUCCEEDED)

    assert seen == [{"held": 1}]
    assert [(a.worker_id, a.outcome) for a in done.attempts] == [
        ("node-crashed", Attempt.OUTCOME_LEASE_EXPIRED),
        ("python-e2e", Attempt.OUTCOME_SUCCEEDED),
    ]


async def test_a_node_worker_takes_over_a_job_a_python_worker_abandoned(
    stub: QueueServiceStub, address: str, node: Any
) -> None:
    job = (await stub.Enqueue(enqueue_request("takeover-node", {"do": "echo"}, max_attempts=2))).job
    # A Python worker leases the job, saves a checkpoint, then goes silent: no heartbeat, no ack.
    leased = (
        await stub.Lease(qs.LeaseRequest(queues=["takeover-node"], worker_id="python-crashed", lease_duration=ms(300)))
    ).jobs[0]
    beat = qs.HeartbeatRequest(
        job_id=job.id, lease_token=leased.lease_token, lease_duration=ms(300), checkpoint=b'{"step":2}'
    )
    await stub.Heartbeat(beat)

    worker = await node("worker.js", address, "takeover-node", "--id", "node-e2e")
    started = await worker.line_where("event", "started")
    done = await job_in(stub, job.id, Job.STATE_SUCCEEDED)

    assert started["attempt"] == 2 and started["previousCheckpoint"] == {"step": 2}
    assert [(a.worker_id, a.outcome) for a in done.attempts] == [
        ("python-crashed", Attempt.OUTCOME_LEASE_EXPIRED),
        ("node-e2e", Attempt.OUTCOME_SUCCEEDED),
    ]
    assert await worker.stop(signal.SIGTERM) == 0


async def _has_checkpoint(stub: QueueServiceStub, job_id: str) -> bool:
    return bool((await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job.checkpoint)
