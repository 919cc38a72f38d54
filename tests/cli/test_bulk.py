"""`spool bulk requeue|cancel|ls|show|abort`, run for real against a live server whose bulk runner
runs as it does in production."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.config import Settings
from tests import conftest
from tests.cli.conftest import Spool


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(bulk_interval=timedelta(milliseconds=100), bulk_batch=2)


async def dead(stub: QueueServiceStub, queue: str, error: str) -> str:
    job = (await stub.Enqueue(qs.EnqueueRequest(queue=queue, payload=b"{}"))).job
    (held,) = (await stub.Lease(qs.LeaseRequest(queues=[queue], worker_id="w", max_jobs=1))).jobs
    err = job_pb2.JobError(type="SMTPError", message=error)
    await stub.Nack(qs.NackRequest(job_id=job.id, lease_token=held.lease_token, error=err, retryable=False))
    return job.id


async def state(stub: QueueServiceStub, job_id: str) -> int:
    return (await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job.state


async def test_bulk_requeue_counts_asks_and_waits_for_the_server(cli: Spool, stub: QueueServiceStub) -> None:
    ids = [await dead(stub, "emails", "connection timed out") for _ in range(5)]
    kept = await dead(stub, "emails", "mailbox full")

    declined = await cli("bulk", "requeue", "--queue", "emails", "--state", "dead", "--error", "timed out", stdin="n\n")
    done = await cli("bulk", "requeue", "--queue", "emails", "--state", "dead", "--error", "timed out", "--yes")

    assert declined.code == 1 and "Requeue 5 job(s) matching this filter?" in declined.err
    assert done.code == 0, done.err
    assert "requeue, succeeded, 5 of 5 job(s), by no key" in done.out
    assert [await state(stub, i) for i in ids] == [job_pb2.Job.STATE_PENDING] * 5
    assert await state(stub, kept) == job_pb2.Job.STATE_DEAD

    listed = await cli("bulk", "ls", "-o", "json")
    (op,) = listed.json()
    assert op["done"] == 5 and op["filter"]["error_contains"] == "timed out"
    shown = await cli("bulk", "show", op["id"])
    assert "succeeded, 5 of 5" in shown.out


async def test_bulk_cancel_without_waiting_then_abort_is_a_no_op_once_finished(
    cli: Spool, stub: QueueServiceStub
) -> None:
    for _ in range(3):
        await stub.Enqueue(qs.EnqueueRequest(queue="reports", payload=b"{}"))

    started = await cli("bulk", "cancel", "--queue", "reports", "--yes", "--no-wait", "-o", "json")
    op = started.json()
    assert op["state"] == "STATE_RUNNING" and op["expected"] == 3

    async def finished() -> bool:
        return (await cli("bulk", "show", op["id"], "-o", "json")).json()["state"] == "STATE_SUCCEEDED"

    await conftest.wait_until(finished, within=20)
    aborted = await cli("bulk", "abort", op["id"])
    assert "cancel, succeeded, 3 of 3" in aborted.out


async def test_bulk_without_a_filter_is_refused(cli: Spool) -> None:
    result = await cli("bulk", "requeue", "--yes")

    assert result.code == 2 and "bulk never means every job" in result.err


async def test_bulk_show_of_an_unknown_operation(cli: Spool) -> None:
    result = await cli("bulk", "show", "4242")

    assert result.code != 0 and "no bulk operation '4242'" in result.err
