"""`spool tail` on one real spoold process sees the events made through another replica on the
same database, filtered by queue and kind, one line per event."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.cli.conftest import environment, run
from tests.conftest import wait_until
from tests.helpers import enqueue_request
from tests.replicas.test_replicas import Replica, processes, replicas, secs

__all__ = ["processes", "replicas"]  # the two-replica fixtures, used here


async def _fail(replica: Replica, queue: str, job_id: str, message: str) -> None:
    (leased,) = (await replica.stub.Lease(qs.LeaseRequest(queues=[queue], wait=secs(10), worker_id="w-2"))).jobs
    assert leased.job.id == job_id
    error = job_pb2.JobError(type="SMTPError", message=message)
    await replica.stub.Nack(qs.NackRequest(job_id=job_id, lease_token=leased.lease_token, error=error, retry_after={}))


async def test_spool_tail_sees_events_made_through_another_replica(
    replicas: list[Replica], db: asyncpg.Connection
) -> None:
    tailed, other = replicas
    env = environment(SPOOL_ADDRESS=f"127.0.0.1:{tailed.port}")
    args = ("tail", "--queue", "emails", "--state", "dead,failed", "--count", "2", "-o", "json")
    tail = asyncio.create_task(run(*args, env=env))

    async def tailing() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM spool.tailers WHERE expires_at > now()"))

    await wait_until(tailing, within=30)
    # Through the other replica: a job in another queue that dies, one that succeeds, and one in
    # emails that fails, then dies. Only the last two events match.
    noise = (await other.stub.Enqueue(enqueue_request("sms", {}))).job.id
    await _fail(other, "sms", noise, "not matching: other queue")
    ok = (await other.stub.Enqueue(enqueue_request("emails", {"ok": True}))).job.id
    (leased,) = (await other.stub.Lease(qs.LeaseRequest(queues=["emails"], wait=secs(10)))).jobs
    await other.stub.Ack(qs.AckRequest(job_id=ok, lease_token=leased.lease_token))
    job_id = (await other.stub.Enqueue(enqueue_request("emails", {}, max_attempts=2))).job.id
    await _fail(other, "emails", job_id, "mailbox full")
    await _fail(other, "emails", job_id, "mailbox still full")

    result = await asyncio.wait_for(tail, 60)
    assert result.code == 0, result.err
    events = [json.loads(line)["event"] for line in result.out.splitlines()]
    assert [(e["job_id"], e["queue"], e["kind"], e["attempt"]) for e in events] == [
        (job_id, "emails", "KIND_FAILED", 1),
        (job_id, "emails", "KIND_DEAD", 2),
    ]
    assert (events[1]["error"]["type"], events[1]["error"]["message"]) == ("SMTPError", "mailbox still full")
