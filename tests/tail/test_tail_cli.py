"""`spool tail` in a terminal's form, and its bad options (exit 2, the option named)."""

from __future__ import annotations

import asyncio

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.api.support import Stub, seconds
from tests.cli.conftest import Spool, cli
from tests.conftest import wait_until
from tests.helpers import enqueue_request

__all__ = ["cli"]


async def test_one_line_per_event(app: App, cli: Spool, stub: Stub) -> None:
    tail = asyncio.create_task(cli("tail", "-q", "emails", "-s", "failed", "-n", "1"))
    assert app.tail is not None
    hub = app.tail

    async def tailing() -> bool:
        return hub.streams > 0

    await wait_until(tailing, within=30)
    job = (await stub.Enqueue(enqueue_request("emails", {}, max_attempts=3))).job
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["emails"], wait=seconds(5), worker_id="worker-1"))).jobs
    error = job_pb2.JobError(type="SMTPError", message="mailbox full")
    await stub.Nack(qs.NackRequest(job_id=job.id, lease_token=leased.lease_token, error=error))
    result = await asyncio.wait_for(tail, 60)
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    assert line.split()[2:] == [
        "emails",
        job.id,
        "failed",
        "attempt",
        "1/3",
        "worker-1",
        "SMTPError:",
        "mailbox",
        "full",
    ]


async def test_a_bad_state_is_a_usage_error_naming_the_option(cli: Spool) -> None:
    result = await cli("tail", "--state", "dead,exploded")
    assert result.code == 2
    assert "--state" in result.err and "exploded" in result.err
