"""Concurrency keys belong to their queue unless a job asks for a global key: jobs holding a key in
one queue do not hold back another queue's jobs with the same key."""

from __future__ import annotations

import grpc

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub, seconds
from tests.helpers import enqueue_request, expect_error

Job = job_pb2.Job
GLOBAL = Job.CONCURRENCY_SCOPE_GLOBAL


async def hold(stub: Stub, queue: str, key: str, **fields: object) -> None:
    """A job with the key, leased for 12 hours: its slot stays taken."""
    await stub.Enqueue(enqueue_request(queue, concurrency_key=key, **fields))
    leased = await stub.Lease(qs.LeaseRequest(queues=[queue], lease_duration=seconds(12 * 3600)))
    assert len(leased.jobs) == 1


async def leasable(stub: Stub, queue: str, key: str, **fields: object) -> bool:
    await stub.Enqueue(enqueue_request(queue, concurrency_key=key, **fields))
    return len((await stub.Lease(qs.LeaseRequest(queues=[queue]))).jobs) == 1


async def test_a_key_is_scoped_to_its_queue_by_default(stub: Stub) -> None:
    await hold(stub, "evil", "customer-42")
    assert await leasable(stub, "victim", "customer-42")
    assert not await leasable(stub, "evil", "customer-42")


async def test_a_global_key_is_shared_by_every_queue_that_asks_for_it(stub: Stub) -> None:
    await hold(stub, "billing", "stripe", concurrency_scope=GLOBAL)
    assert not await leasable(stub, "refunds", "stripe", concurrency_scope=GLOBAL)
    # The queue-scoped key of the same name is another key.
    assert await leasable(stub, "refunds", "stripe")


async def test_jobs_say_which_scope_their_key_has(stub: Stub) -> None:
    scoped = (await stub.Enqueue(enqueue_request("q", concurrency_key="k"))).job
    shared = (await stub.Enqueue(enqueue_request("q", concurrency_key="k", concurrency_scope=GLOBAL))).job
    plain = (await stub.Enqueue(enqueue_request("q"))).job
    assert (scoped.concurrency_scope, shared.concurrency_scope) == (Job.CONCURRENCY_SCOPE_QUEUE, GLOBAL)
    assert plain.concurrency_scope == Job.CONCURRENCY_SCOPE_UNSPECIFIED
    got = (await stub.GetJob(qs.GetJobRequest(job_id=shared.id))).job
    assert got.concurrency_scope == GLOBAL


async def test_a_scope_needs_a_key_and_a_known_value(stub: Stub) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(
        stub.Enqueue(enqueue_request("q", concurrency_scope=GLOBAL)), invalid, "INVALID_ARGUMENT", "concurrency_scope"
    )
    await expect_error(
        stub.Enqueue(enqueue_request("q", concurrency_key="k", concurrency_scope=7)),  # type: ignore[arg-type]
        invalid,
        "INVALID_ARGUMENT",
        "concurrency_scope",
    )
