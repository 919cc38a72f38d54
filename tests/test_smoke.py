from __future__ import annotations

from spool.v1 import queue_service_pb2 as qs
from tests.helpers import enqueue_request


async def test_enqueue_lease_ack_round_trip(stub) -> None:  # type: ignore[no-untyped-def]
    enq = await stub.Enqueue(enqueue_request("emails", {"to": "a@example.com"}))
    leased = await stub.Lease(qs.LeaseRequest(queues=["emails"], worker_id="w1"))
    assert [lj.job.id for lj in leased.jobs] == [enq.job.id]
    lj = leased.jobs[0]
    acked = await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token, result=b'{"ok":true}'))
    assert acked.job.state == acked.job.STATE_SUCCEEDED
    got = await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))
    assert got.job.result == b'{"ok":true}'
    assert [a.outcome for a in got.job.attempts] == [got.job.attempts[0].OUTCOME_SUCCEEDED]
