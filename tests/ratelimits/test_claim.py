"""Rate limits in the claim, over real gRPC: Lease never hands out a job over a queue's or a key's
limit, held-back jobs stay PENDING and count as throttled, other keys run at full speed, and the
limits combine with priority, concurrency limits and pause as docs/rate-limits.md says."""

from __future__ import annotations

import asyncpg
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from tests.ratelimits.support import jobs, limit_queue, rate

Status = job_pb2.Job.Status


async def lease(stub: QueueServiceStub, queue: str, n: int = 100) -> list[qs.LeasedJob]:
    return list((await stub.Lease(qs.LeaseRequest(queues=[queue], max_jobs=n, worker_id="w"))).jobs)


async def stats(admin: AdminServiceStub, queue: str) -> adm.QueueStats:
    return (await admin.GetQueue(adm.GetQueueRequest(name=queue))).queue.stats


async def test_a_queue_limit_hands_out_its_burst_and_holds_the_rest_back_as_throttled(
    stub: QueueServiceStub, admin: AdminServiceStub, db: asyncpg.Connection
) -> None:
    shown = await limit_queue(admin, "api", rate(1, seconds=60, burst=5))
    assert shown.rate_limit.limit == 1 and shown.rate_limit.interval.seconds == 60 and shown.rate_limit.burst == 5
    await stub.EnqueueBatch(jobs("api", 30))
    assert len(await lease(stub, "api")) == 5
    assert await lease(stub, "api") == []  # the window is shut: nothing over the limit
    s = await stats(admin, "api")
    assert (s.ready, s.throttled, s.running) == (0, 25, 5)
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'pending'") == 25
    listed = await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[Status.STATUS_THROTTLED])))
    assert len(listed.jobs) == 25
    ready = await stub.ListJobs(qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[Status.STATUS_READY])))
    assert len(ready.jobs) == 0
    # Lifted: everything left is ready again at once.
    lifted = await limit_queue(admin, "api", None)
    assert not lifted.HasField("rate_limit") and lifted.stats.ready == 25 and lifted.stats.throttled == 0
    assert len(await lease(stub, "api")) == 25


async def test_a_key_limit_holds_while_other_keys_in_the_queue_run_at_full_speed(
    stub: QueueServiceStub, admin: AdminServiceStub
) -> None:
    await stub.EnqueueBatch(jobs("mixed", 20, rate_limit_key="stripe", rate_limit=rate(100, seconds=60)))
    await stub.EnqueueBatch(jobs("mixed", 20, rate_limit_key="github", rate_limit=rate(1, seconds=60, burst=3)))
    await stub.EnqueueBatch(jobs("mixed", 20))
    first = await lease(stub, "mixed")
    by_key = {k: sum(1 for j in first if j.job.rate_limit_key == k) for k in ("stripe", "github", "")}
    assert by_key == {"stripe": 1, "github": 3, "": 20}  # stripe: burst 1; github: burst 3; the rest unlimited
    assert first[0].job.rate_limit.limit in (1, 100)
    assert len(await lease(stub, "mixed")) == 0
    s = await stats(admin, "mixed")
    assert (s.throttled, s.ready, s.running) == (36, 0, 24)
    # A key is one limit across queues.
    await stub.Enqueue(qs.EnqueueRequest(queue="other", payload=b"{}", rate_limit_key="github", rate_limit=rate(1, 60)))
    await stub.Enqueue(qs.EnqueueRequest(queue="other", payload=b"{}"))
    assert [j.job.rate_limit_key for j in await lease(stub, "other")] == [""]


async def test_priority_orders_what_the_window_admits(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    await limit_queue(admin, "prio", rate(1, seconds=60, burst=2))
    await stub.EnqueueBatch(jobs("prio", 3, priority=0))
    await stub.EnqueueBatch(jobs("prio", 3, priority=9))
    assert [j.job.priority for j in await lease(stub, "prio")] == [9, 9]


async def test_a_throttled_high_priority_key_does_not_hold_back_lower_priority_work(stub: QueueServiceStub) -> None:
    await stub.EnqueueBatch(jobs("crowd", 5, priority=9, rate_limit_key="slow", rate_limit=rate(1, 60)))
    await stub.EnqueueBatch(jobs("crowd", 5, priority=0))
    assert len(await lease(stub, "crowd", 3)) == 3  # one slow job, two others
    assert len(await lease(stub, "crowd", 10)) == 3  # the slow key is shut: the rest of the others


async def test_concurrency_and_rate_limits_both_hold_and_a_refused_job_spends_no_token(
    stub: QueueServiceStub, admin: AdminServiceStub
) -> None:
    await limit_queue(admin, "both", rate(1, seconds=60, burst=3))
    await stub.EnqueueBatch(jobs("both", 4, concurrency_key="db", concurrency_limit=1))
    await stub.EnqueueBatch(jobs("both", 4))
    first = await lease(stub, "both")
    assert len(first) == 3 and sum(1 for j in first if j.job.concurrency_key) == 1
    assert await lease(stub, "both") == []


async def test_a_paused_queue_spends_nothing_and_resumes_with_its_window(
    stub: QueueServiceStub, admin: AdminServiceStub
) -> None:
    await limit_queue(admin, "held", rate(1, seconds=60, burst=2))
    await stub.EnqueueBatch(jobs("held", 5))
    await admin.PauseQueue(adm.PauseQueueRequest(name="held"))
    assert await lease(stub, "held") == []
    await admin.ResumeQueue(adm.ResumeQueueRequest(name="held"))
    assert len(await lease(stub, "held")) == 2


async def test_update_queue_keeps_the_limit_unless_the_mask_names_it(admin: AdminServiceStub) -> None:
    await limit_queue(admin, "kept", rate(5, seconds=10))
    req = adm.UpdateQueueRequest(name="kept", defaults=adm.QueueDefaults(max_attempts=3))
    q = (await admin.UpdateQueue(req)).queue
    assert q.rate_limit.limit == 5 and q.rate_limit.burst == 1 and q.defaults.max_attempts == 3
    both = adm.UpdateQueueRequest(name="kept", rate_limit=rate(7), update_mask=FieldMask(paths=["rate_limit"]))
    assert (await admin.UpdateQueue(both)).queue.rate_limit.limit == 7
    listed = (await admin.ListQueues(adm.ListQueuesRequest())).queues
    assert [(x.name, x.rate_limit.limit) for x in listed] == [("kept", 7)]


async def test_sql_claim_returns_jobs_only(
    stub: QueueServiceStub, admin: AdminServiceStub, db: asyncpg.Connection
) -> None:
    await limit_queue(admin, "sqlq", rate(1, seconds=60))
    await stub.EnqueueBatch(jobs("sqlq", 3))
    first = await db.fetch("SELECT * FROM spool.claim(ARRAY['sqlq'], 10, NULL, 'sql')")
    assert [r["state"] for r in first] == ["running"]
    assert await db.fetch("SELECT * FROM spool.claim(ARRAY['sqlq'], 10, NULL, 'sql')") == []
