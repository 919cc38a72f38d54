"""AdminService over real gRPC: stats by derived status, pause/resume, per-queue defaults, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.app import App
from spoold.notify import READY
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error

Kind = job_pb2.BackoffPolicy.Kind


@pytest.fixture
async def admin(channel: grpc.aio.Channel) -> AsyncIterator[AdminServiceStub]:
    yield AdminServiceStub(channel)


def secs(n: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=n))
    return d


async def lease(stub: QueueServiceStub, queue: str, n: int = 1) -> list[qs.LeasedJob]:
    return list((await stub.Lease(qs.LeaseRequest(queues=[queue], max_jobs=n, worker_id="w"))).jobs)


async def test_stats_by_derived_status(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    q = "stats"
    # Six jobs due now; each is moved to one status below, and two stay ready.
    for _ in range(8):
        await stub.Enqueue(enqueue_request(q, max_attempts=3))
    await stub.Enqueue(enqueue_request(q, delay=secs(3600)))  # scheduled
    held = await lease(stub, q, 5)
    ack, dead, retry, running, _cancel_running = held
    await stub.Ack(qs.AckRequest(job_id=ack.job.id, lease_token=ack.lease_token))
    await stub.Nack(qs.NackRequest(job_id=dead.job.id, lease_token=dead.lease_token, retryable=False))
    await stub.Nack(qs.NackRequest(job_id=retry.job.id, lease_token=retry.lease_token, retry_after=secs(600)))
    pending = await lease(stub, q, 1)  # a 6th, to cancel while pending: release it first
    await stub.Nack(qs.NackRequest(job_id=pending[0].job.id, lease_token=pending[0].lease_token, retryable=False))
    await stub.Requeue(qs.RequeueRequest(job_ids=[pending[0].job.id]))
    await stub.CancelJob(qs.CancelJobRequest(job_id=pending[0].job.id))
    del running

    got = (await admin.GetQueue(adm.GetQueueRequest(name=q))).queue
    s = got.stats
    assert (s.ready, s.scheduled, s.retrying, s.running, s.dead, s.succeeded, s.cancelled) == (2, 1, 1, 2, 1, 1, 1)
    assert s.finished_last_minute == 3
    assert s.HasField("lag") and s.lag.ToTimedelta() >= timedelta(0)
    assert not got.paused and got.name == q

    listed = (await admin.ListQueues(adm.ListQueuesRequest())).queues
    assert [x.name for x in listed] == [q]
    assert (listed[0].stats.ready, listed[0].stats.dead, listed[0].stats.finished_last_minute) == (2, 1, 3)


async def test_queue_exists_with_settings_or_jobs(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    await stub.Enqueue(enqueue_request("b-jobs"))
    await admin.PauseQueue(adm.PauseQueueRequest(name="a-settings"))
    listed = (await admin.ListQueues(adm.ListQueuesRequest())).queues
    assert [(x.name, x.paused) for x in listed] == [("a-settings", True), ("b-jobs", False)]
    empty = (await admin.GetQueue(adm.GetQueueRequest(name="a-settings"))).queue.stats
    assert empty.ready == 0 and not empty.HasField("lag")
    await expect_error(admin.GetQueue(adm.GetQueueRequest(name="nope")), grpc.StatusCode.NOT_FOUND, "QUEUE_NOT_FOUND")


async def test_paused_queue_is_not_leased_but_accepts_jobs(
    app: App, stub: QueueServiceStub, admin: AdminServiceStub
) -> None:
    paused = (await admin.PauseQueue(adm.PauseQueueRequest(name="p"))).queue
    assert paused.paused
    job = (await stub.Enqueue(enqueue_request("p"))).job
    await stub.Enqueue(enqueue_request("open"))
    leased = await stub.Lease(qs.LeaseRequest(queues=["p", "open"], max_jobs=10))
    assert [lj.job.queue for lj in leased.jobs] == ["open"]
    # Pausing twice is harmless; a long poll on the paused queue waits until resumed.
    await admin.PauseQueue(adm.PauseQueueRequest(name="p"))
    waiting = asyncio.ensure_future(stub.Lease(qs.LeaseRequest(queues=["p"], wait=secs(20))))
    assert app.listener is not None
    await wait_until(lambda: app.listener.subscriber_count(READY) == 1)  # type: ignore[union-attr]
    assert not waiting.done()
    resumed = (await admin.ResumeQueue(adm.ResumeQueueRequest(name="p"))).queue
    assert not resumed.paused and resumed.stats.ready + resumed.stats.running == 1
    got = await asyncio.wait_for(waiting, 10)
    assert [lj.job.id for lj in got.jobs] == [job.id]


async def test_pausing_does_not_touch_running_jobs(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    await stub.Enqueue(enqueue_request("r"))
    (lj,) = await lease(stub, "r")
    await admin.PauseQueue(adm.PauseQueueRequest(name="r"))
    acked = await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    assert acked.job.state == job_pb2.Job.STATE_SUCCEEDED


async def test_queue_defaults_apply_to_jobs_without_their_own(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    defaults = adm.QueueDefaults(
        max_attempts=5,
        backoff=job_pb2.BackoffPolicy(kind=Kind.KIND_FIXED, initial_interval=secs(7), jitter=False),
        lease_duration=secs(45),
        attempt_timeout=secs(600),
    )
    updated = (await admin.UpdateQueue(adm.UpdateQueueRequest(name="d", defaults=defaults))).queue
    assert updated.defaults.max_attempts == 5 and updated.defaults.backoff.kind == Kind.KIND_FIXED

    plain = (await stub.Enqueue(enqueue_request("d"))).job
    assert plain.max_attempts == 5
    assert plain.lease_duration.ToTimedelta() == timedelta(seconds=45)
    assert plain.attempt_timeout.ToTimedelta() == timedelta(seconds=600)
    b = plain.backoff
    assert (b.kind, b.initial_interval.ToTimedelta(), b.jitter) == (Kind.KIND_FIXED, timedelta(seconds=7), False)
    # Not set by job or queue: the server's defaults (the cap never below the initial delay).
    assert b.multiplier == 2 and b.max_interval.ToTimedelta() == timedelta(minutes=5)

    own = (
        await stub.Enqueue(
            enqueue_request(
                "d", max_attempts=2, lease_duration=secs(5), backoff=job_pb2.BackoffPolicy(multiplier=3, jitter=True)
            )
        )
    ).job
    assert own.max_attempts == 2 and own.lease_duration.ToTimedelta() == timedelta(seconds=5)
    # The backoff merges field by field: the job's multiplier and jitter, the queue's kind and initial.
    assert (own.backoff.kind, own.backoff.multiplier, own.backoff.jitter) == (Kind.KIND_FIXED, 3, True)
    assert own.backoff.initial_interval.ToTimedelta() == timedelta(seconds=7)

    other = (await stub.Enqueue(enqueue_request("elsewhere"))).job
    assert other.max_attempts == 1 and other.lease_duration.ToTimedelta() == timedelta(seconds=30)


async def test_queue_lease_default_is_used_by_lease(stub: QueueServiceStub, admin: AdminServiceStub) -> None:
    await admin.UpdateQueue(adm.UpdateQueueRequest(name="l", defaults=adm.QueueDefaults(lease_duration=secs(600))))
    await stub.Enqueue(enqueue_request("l"))
    (lj,) = await lease(stub, "l")
    granted = lj.lease_expires_at.ToDatetime() - lj.job.updated_at.ToDatetime()
    assert timedelta(seconds=590) < granted <= timedelta(seconds=600)


async def test_sql_enqueue_honours_queue_defaults(admin: AdminServiceStub, db: asyncpg.Connection) -> None:
    defaults = adm.QueueDefaults(max_attempts=4, lease_duration=secs(90), backoff=job_pb2.BackoffPolicy(multiplier=3))
    await admin.UpdateQueue(adm.UpdateQueueRequest(name="sql", defaults=defaults))
    async with db.transaction():
        job_id = await db.fetchval("""SELECT spool.enqueue('sql', '{"a": 1}'::jsonb)""")
        own = await db.fetchval("""SELECT spool.enqueue('sql', '{"a": 2}'::jsonb, max_attempts => 2)""")
        plain = await db.fetchval("""SELECT spool.enqueue('plain', '{"a": 3}'::jsonb)""")
    rows = {
        r["id"]: r
        for r in await db.fetch(
            "SELECT id, max_attempts, lease_duration, backoff_multiplier FROM spool.jobs WHERE id = ANY($1)",
            [job_id, own, plain],
        )
    }
    assert (rows[job_id]["max_attempts"], rows[job_id]["lease_duration"]) == (4, timedelta(seconds=90))
    assert rows[job_id]["backoff_multiplier"] == 3
    assert rows[own]["max_attempts"] == 2
    assert (rows[plain]["max_attempts"], rows[plain]["lease_duration"]) == (1, timedelta(seconds=30))


async def test_update_mask_writes_and_clears_only_named_fields(admin: AdminServiceStub) -> None:
    full = adm.QueueDefaults(
        max_attempts=9,
        backoff=job_pb2.BackoffPolicy(kind=Kind.KIND_LINEAR, initial_interval=secs(2)),
        retention_dead=secs(86400),
    )
    await admin.UpdateQueue(adm.UpdateQueueRequest(name="m", defaults=full))
    # Named but unset: back to the server's default. Set but not named: ignored.
    req = adm.UpdateQueueRequest(
        name="m",
        defaults=adm.QueueDefaults(max_attempts=50, lease_duration=secs(10)),
        update_mask=FieldMask(paths=["max_attempts", "backoff.kind", "retention_succeeded"]),
    )
    d = (await admin.UpdateQueue(req)).queue.defaults
    assert d.max_attempts == 50 and not d.HasField("lease_duration")
    assert d.backoff.kind == Kind.KIND_UNSPECIFIED and d.backoff.initial_interval.ToTimedelta() == timedelta(seconds=2)
    assert d.retention_dead.ToTimedelta() == timedelta(days=1) and not d.HasField("retention_succeeded")
    cleared = await admin.UpdateQueue(
        adm.UpdateQueueRequest(name="m", update_mask=FieldMask(paths=["backoff", "max_attempts", "retention_dead"]))
    )
    assert cleared.queue.defaults == adm.QueueDefaults(backoff=job_pb2.BackoffPolicy())


def _bad(**fields: Any) -> adm.UpdateQueueRequest:
    return adm.UpdateQueueRequest(name="bad", **fields)


BAD_UPDATES = [
    (_bad(defaults=adm.QueueDefaults(max_attempts=0)), "defaults.max_attempts"),
    (_bad(defaults=adm.QueueDefaults(max_attempts=101)), "defaults.max_attempts"),
    (_bad(defaults=adm.QueueDefaults(backoff=job_pb2.BackoffPolicy(kind=99))), "defaults.backoff.kind"),  # type: ignore[arg-type]
    (_bad(defaults=adm.QueueDefaults(backoff=job_pb2.BackoffPolicy(multiplier=0.5))), "defaults.backoff.multiplier"),
    (
        _bad(defaults=adm.QueueDefaults(backoff=job_pb2.BackoffPolicy(multiplier=float("nan")))),
        "defaults.backoff.multiplier",
    ),
    (
        _bad(
            defaults=adm.QueueDefaults(backoff=job_pb2.BackoffPolicy(initial_interval=secs(10), max_interval=secs(5)))
        ),
        "defaults.backoff.max_interval",
    ),
    (
        _bad(defaults=adm.QueueDefaults(backoff=job_pb2.BackoffPolicy(initial_interval=secs(-1)))),
        "defaults.backoff.initial_interval",
    ),
    (_bad(defaults=adm.QueueDefaults(lease_duration=secs(0))), "defaults.lease_duration"),
    (_bad(defaults=adm.QueueDefaults(lease_duration=secs(13 * 3600))), "defaults.lease_duration"),
    (_bad(defaults=adm.QueueDefaults(attempt_timeout=secs(-5))), "defaults.attempt_timeout"),
    (_bad(defaults=adm.QueueDefaults(attempt_timeout=Duration(seconds=10**12))), "defaults.attempt_timeout"),
    (_bad(defaults=adm.QueueDefaults(retention_dead=secs(-1))), "defaults.retention_dead"),
    (_bad(defaults=adm.QueueDefaults(retention_succeeded=secs(3651 * 86400))), "defaults.retention_succeeded"),
    (
        _bad(defaults=adm.QueueDefaults(retention_cancelled=Duration(seconds=1, nanos=-1))),
        "defaults.retention_cancelled",
    ),
    (_bad(update_mask=FieldMask(paths=["max_attempts", "paused"])), "update_mask.paths[1]"),
    (_bad(update_mask=FieldMask(paths=["backoff.nope"])), "update_mask.paths[0]"),
    (_bad(), "update_mask"),
    (adm.UpdateQueueRequest(name="", defaults=adm.QueueDefaults(max_attempts=2)), "name"),
    (adm.UpdateQueueRequest(name="a b", defaults=adm.QueueDefaults(max_attempts=2)), "name"),
    (adm.UpdateQueueRequest(name="a\x00", defaults=adm.QueueDefaults(max_attempts=2)), "name"),
    (adm.UpdateQueueRequest(name="q" * 129, defaults=adm.QueueDefaults(max_attempts=2)), "name"),
]


@pytest.mark.parametrize(("request_", "field"), BAD_UPDATES, ids=[f for _, f in BAD_UPDATES])
async def test_bad_update_is_refused_and_writes_nothing(
    admin: AdminServiceStub, db: asyncpg.Connection, request_: adm.UpdateQueueRequest, field: str
) -> None:
    await expect_error(admin.UpdateQueue(request_), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert await db.fetchval("SELECT count(*) FROM spool.queues") == 0


@pytest.mark.parametrize("name", ["", " ", "a b", "x\x00", "q" * 129])
async def test_bad_queue_name_everywhere(admin: AdminServiceStub, db: asyncpg.Connection, name: str) -> None:
    for call in (
        admin.GetQueue(adm.GetQueueRequest(name=name)),
        admin.PauseQueue(adm.PauseQueueRequest(name=name)),
        admin.ResumeQueue(adm.ResumeQueueRequest(name=name)),
    ):
        await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "name")
    assert await db.fetchval("SELECT count(*) FROM spool.queues") == 0
