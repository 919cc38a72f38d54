"""The semantics that must hold (DESIGN.md): fencing, the two clocks, the reaper, retries and backoff,
delayed start, priority, idempotency and per-key concurrency limits, each over real gRPC."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.loops import Reaper
from spoold.store.database import create_pool
from spoold.store.jobs import JobStore
from tests import conftest
from tests.api.support import (
    Attempt,
    Job,
    Stub,
    count,
    expect_lease_lost,
    expire_lease,
    job_row,
    lease_one,
    ms,
    reaper,
    seconds,
)
from tests.helpers import enqueue_request

NO_JITTER = job_pb2.BackoffPolicy(jitter=False)


def at(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


async def retry_delay(db: asyncpg.Connection, job_id: str) -> timedelta:
    """How far in the future the failure put the next attempt (run_at and updated_at share now())."""
    row = await job_row(db, job_id)
    assert row["state"] == "pending", row["state"]
    delay = row["run_at"] - row["updated_at"]
    assert isinstance(delay, timedelta)
    return delay


async def make_due(db: asyncpg.Connection, job_id: str) -> None:
    await db.execute("UPDATE spool.jobs SET run_at = now() WHERE id = $1", int(job_id))


# ---- fencing


async def test_each_claim_gets_a_new_increasing_lease_token(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=5, backoff=NO_JITTER))).job.id
    for _ in range(3):
        await stub.Enqueue(enqueue_request("other"))
    tokens = []
    for i in range(6):
        if i % 2:
            lj = await lease_one(stub, "other")
        else:
            lj = await lease_one(stub, "q")
            await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token))
            await make_due(db, job_id)
        tokens.append(int(lj.lease_token))
    assert all(a < b for a, b in itertools.pairwise(tokens)), tokens


@pytest.mark.parametrize("call", ["heartbeat", "ack", "nack"])
async def test_stale_token_after_release_is_refused_and_changes_nothing(stub: Stub, app: App, db, call: str) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", max_attempts=3, backoff=NO_JITTER))
    old = await lease_one(stub, "q", worker_id="slow")
    await expire_lease(db, old.job.id)
    assert await reaper(app).run_once() == 1
    await make_due(db, old.job.id)
    new = await lease_one(stub, "q", worker_id="fast")
    assert int(new.lease_token) > int(old.lease_token)
    before = await job_row(db, old.job.id)
    attempts_before = await count(db, "attempts")
    stale = {
        "heartbeat": stub.Heartbeat(
            qs.HeartbeatRequest(job_id=old.job.id, lease_token=old.lease_token, checkpoint=b"x")
        ),
        "ack": stub.Ack(qs.AckRequest(job_id=old.job.id, lease_token=old.lease_token, result=b'"stale"')),
        "nack": stub.Nack(qs.NackRequest(job_id=old.job.id, lease_token=old.lease_token, retryable=False)),
    }[call]
    await expect_lease_lost(stale)
    assert await job_row(db, old.job.id) == before
    assert await count(db, "attempts") == attempts_before
    # The current holder is unaffected.
    await stub.Ack(qs.AckRequest(job_id=new.job.id, lease_token=new.lease_token))


async def test_token_from_before_requeue_cannot_finish_the_new_attempt(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    old = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=old.job.id, lease_token=old.lease_token))
    await stub.Requeue(qs.RequeueRequest(job_ids=[old.job.id]))
    new = await lease_one(stub, "q")
    assert new.job.attempt == old.job.attempt == 1  # attempt numbers repeat: only the token fences
    before = await job_row(db, old.job.id)
    await expect_lease_lost(stub.Ack(qs.AckRequest(job_id=old.job.id, lease_token=old.lease_token)))
    assert await job_row(db, old.job.id) == before


# ---- the two clocks


async def test_heartbeat_extends_the_lease(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q", lease_duration=ms(300))
    first_expiry = at(lj.lease_expires_at)
    beat = await stub.Heartbeat(
        qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, lease_duration=seconds(30))
    )
    assert at(beat.lease_expires_at) > first_expiry + timedelta(seconds=25)
    assert (await job_row(db, lj.job.id))["lease_expires_at"] == at(beat.lease_expires_at)

    async def past_first_expiry() -> bool:
        return bool(await db.fetchval("SELECT now() > $1", first_expiry))

    await conftest.wait_until(past_first_expiry, within=5)
    assert await reaper(app).run_once() == 0
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))


@pytest.mark.parametrize("granted", [None, 5, 600])
async def test_heartbeat_without_duration_extends_by_the_granted_lease(  # type: ignore[no-untyped-def]
    stub: Stub, db, granted: float | None
) -> None:
    await stub.Enqueue(enqueue_request("q", lease_duration=seconds(120)))
    lj = await lease_one(stub, "q", **({"lease_duration": seconds(granted)} if granted else {}))
    beat = await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    row = await job_row(db, lj.job.id)
    # The heartbeat moved the lease to its own now() plus the length granted at lease time.
    assert at(beat.lease_expires_at) - row["updated_at"] == timedelta(seconds=granted or 120)


async def test_attempt_timeout_caps_the_lease_and_heartbeats(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", attempt_timeout=ms(500), max_attempts=2, backoff=NO_JITTER))
    lj = await lease_one(stub, "q", lease_duration=seconds(60))
    deadline = at(lj.attempt_deadline)
    assert at(lj.lease_expires_at) == deadline  # a 60 s lease is cut to the 0.5 s attempt timeout
    beat = await stub.Heartbeat(
        qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, lease_duration=seconds(600))
    )
    assert at(beat.lease_expires_at) == deadline
    row = await job_row(db, lj.job.id)
    assert row["lease_expires_at"] == row["attempt_deadline"] == deadline

    reap = reaper(app)
    await conftest.wait_until(reap.run_once, within=10)  # the real clock runs out the timeout
    await expect_lease_lost(stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token)))
    job = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert job.state == Job.STATE_PENDING and job.last_error.type == "AttemptTimedOut"
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_TIMED_OUT]
    assert await retry_delay(db, lj.job.id) == timedelta(seconds=1)


async def test_lease_without_attempt_timeout_has_no_deadline(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q", lease_duration=seconds(5))
    assert not lj.HasField("attempt_deadline")
    assert (await job_row(db, lj.job.id))["attempt_deadline"] is None


# ---- the reaper


async def test_reaper_returns_expired_lease_to_pending_with_backoff(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", max_attempts=2, backoff=NO_JITTER))
    lj = await lease_one(stub, "q")
    assert await reaper(app).run_once() == 0  # a live lease is left alone
    await expire_lease(db, lj.job.id)
    assert await reaper(app).run_once() == 1
    assert await reaper(app).run_once() == 0
    job = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert job.state == Job.STATE_PENDING and job.attempt == 1 and job.last_error.type == "LeaseExpired"
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_LEASE_EXPIRED]
    assert await retry_delay(db, lj.job.id) == timedelta(seconds=1)
    row = await job_row(db, lj.job.id)
    assert row["lease_expires_at"] is None and row["finished_at"] is None


async def test_reaper_sends_job_with_attempts_spent_to_dead(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await expire_lease(db, lj.job.id)
    assert await reaper(app).run_once() == 1
    job = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert job.state == Job.STATE_DEAD and job.HasField("finished_at")
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_LEASE_EXPIRED]


async def test_reaper_ends_an_expired_cancel_requested_job_cancelled(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", max_attempts=3))
    lj = await lease_one(stub, "q")
    await stub.CancelJob(qs.CancelJobRequest(job_id=lj.job.id))
    await expire_lease(db, lj.job.id)
    assert await reaper(app).run_once() == 1
    job = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert job.state == Job.STATE_CANCELLED
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_CANCELLED]


async def test_reaper_records_timed_out_when_the_attempt_deadline_passed(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", attempt_timeout=seconds(60)))
    lj = await lease_one(stub, "q")
    await expire_lease(db, lj.job.id, timed_out=True)
    assert await reaper(app).run_once() == 1
    job = (await stub.GetJob(qs.GetJobRequest(job_id=lj.job.id))).job
    assert job.state == Job.STATE_DEAD and job.last_error.type == "AttemptTimedOut"
    assert [a.outcome for a in job.attempts] == [Attempt.OUTCOME_TIMED_OUT]


async def test_reapers_in_two_processes_never_handle_a_lease_twice(stub: Stub, app: App, db, db_url: str) -> None:  # type: ignore[no-untyped-def]
    n = 60
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q", max_attempts=2) for _ in range(n)]))
    leased = await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=n))
    assert len(leased.jobs) == n
    # A second pool stands for a second spoold process on the same database.
    other = JobStore(await create_pool(db_url, 1, 4))
    try:
        await db.execute("UPDATE spool.jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'running'")
        reapers = [reaper(app, batch=7), reaper(app, batch=5), Reaper(other, 3600, 7), Reaper(other, 3600, 3)]
        handled = 0
        while True:
            rounds = await asyncio.gather(*(r.run_once() for r in reapers))
            handled += sum(rounds)
            if not any(rounds):
                break
    finally:
        await other.pool.close()
    assert handled == n
    assert await count(db, "attempts") == n
    assert await db.fetchval("SELECT count(DISTINCT job_id) FROM spool.attempts WHERE outcome = 'lease_expired'") == n
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'pending' AND attempt = 1") == n


# ---- retries and backoff


async def test_max_attempts_defaults_to_one(stub: Stub) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    assert enq.job.max_attempts == 1
    lj = await lease_one(stub, "q")
    nacked = await stub.Nack(qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    assert nacked.job.state == Job.STATE_DEAD


async def test_max_attempts_100_runs_100_attempts_then_dead(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=100, backoff=NO_JITTER))).job.id
    # Skip to the last attempts: the backoff of a high attempt number must not overflow.
    await db.execute("UPDATE spool.jobs SET attempt = 98 WHERE id = $1", int(job_id))
    lj = await lease_one(stub, "q")
    assert lj.job.attempt == 99
    nacked = await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token))
    assert nacked.job.state == Job.STATE_PENDING
    assert await retry_delay(db, job_id) == timedelta(minutes=5)
    await make_due(db, job_id)
    lj = await lease_one(stub, "q")
    assert lj.job.attempt == 100
    nacked = await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token))
    assert nacked.job.state == Job.STATE_DEAD


async def test_reaper_backoff_at_a_high_attempt_number(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=100, backoff=NO_JITTER))).job.id
    await db.execute("UPDATE spool.jobs SET attempt = 70 WHERE id = $1", int(job_id))
    lj = await lease_one(stub, "q")
    await expire_lease(db, lj.job.id)
    assert await reaper(app).run_once() == 1
    assert await retry_delay(db, job_id) == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kind", "initial", "maximum", "multiplier", "expected"),
    [
        ("exponential", 1, 300, 2.0, lambda a: min(2 ** (a - 1), 300)),
        ("exponential", 0.5, 3600, 3.0, lambda a: min(0.5 * 3 ** (a - 1), 3600)),
        ("linear", 2, 30, 2.0, lambda a: min(2 * a, 30)),
        ("fixed", 3, 300, 2.0, lambda a: 3),
    ],
)
async def test_backoff_delay_for_every_attempt_without_jitter(  # type: ignore[no-untyped-def]
    db, kind: str, initial: float, maximum: float, multiplier: float, expected
) -> None:
    for attempt in range(1, 101):
        delay = await db.fetchval(
            "SELECT spool.backoff_delay($1, $2, $3, $4, false, $5)",
            kind,
            timedelta(seconds=initial),
            timedelta(seconds=maximum),
            multiplier,
            attempt,
        )
        assert delay == timedelta(seconds=expected(attempt)), (kind, attempt, delay)


async def test_backoff_jitter_spreads_over_half_to_full_delay(db) -> None:  # type: ignore[no-untyped-def]
    rows = await db.fetch(
        "SELECT a, spool.backoff_delay('exponential', interval '1 second', interval '5 minutes', 2, true, a) AS d"
        " FROM generate_series(1, 100) AS a, generate_series(1, 20)"
    )
    for row in rows:
        full = timedelta(seconds=min(2 ** (row["a"] - 1), 300))
        assert full / 2 <= row["d"] <= full, (row["a"], row["d"])
    assert len({r["d"] for r in rows if r["a"] == 5}) > 1  # jitter varies


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (job_pb2.BackoffPolicy(jitter=False), [1, 2, 4]),
        (
            job_pb2.BackoffPolicy(kind=job_pb2.BackoffPolicy.KIND_LINEAR, initial_interval=seconds(5), jitter=False),
            [5, 10, 15],
        ),
        (
            job_pb2.BackoffPolicy(kind=job_pb2.BackoffPolicy.KIND_FIXED, initial_interval=seconds(7), jitter=False),
            [7, 7, 7],
        ),
        (
            job_pb2.BackoffPolicy(initial_interval=seconds(100), max_interval=seconds(150), jitter=False),
            [100, 150, 150],
        ),
    ],
)
async def test_nack_schedules_the_retry_by_the_backoff_policy(  # type: ignore[no-untyped-def]
    stub: Stub, db, policy: job_pb2.BackoffPolicy, delays: list[int]
) -> None:
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=10, backoff=policy))).job.id
    for expected in delays:
        lj = await lease_one(stub, "q")
        nacked = await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token))
        assert nacked.job.state == Job.STATE_PENDING
        assert await retry_delay(db, job_id) == timedelta(seconds=expected)
        assert not (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs  # waiting out the backoff
        await make_due(db, job_id)


async def test_nack_with_jitter_stays_within_bounds(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    job_id = (
        await stub.Enqueue(
            enqueue_request("q", max_attempts=5, backoff=job_pb2.BackoffPolicy(initial_interval=seconds(8)))
        )
    ).job.id
    lj = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token))
    assert timedelta(seconds=4) <= await retry_delay(db, job_id) <= timedelta(seconds=8)


async def test_nack_retry_after_overrides_the_backoff(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    job_id = (await stub.Enqueue(enqueue_request("q", max_attempts=3, backoff=NO_JITTER))).job.id
    lj = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token, retry_after=seconds(42)))
    assert await retry_delay(db, job_id) == timedelta(seconds=42)
    await make_due(db, job_id)
    lj = await lease_one(stub, "q")
    await stub.Nack(qs.NackRequest(job_id=job_id, lease_token=lj.lease_token, retry_after=seconds(0)))
    assert await retry_delay(db, job_id) == timedelta(0)
    assert (await lease_one(stub, "q")).job.attempt == 3


async def test_nack_not_retryable_goes_straight_to_dead(stub: Stub) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=10))
    lj = await lease_one(stub, "q")
    error = job_pb2.JobError(type="SchemaError", message="bad payload")
    nacked = await stub.Nack(qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token, retryable=False, error=error))
    assert nacked.job.state == Job.STATE_DEAD and nacked.job.attempt == 1 and nacked.job.last_error == error
    assert nacked.job.HasField("finished_at")


# ---- delayed start


async def test_delay_is_not_leased_before_due(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    enq = await stub.Enqueue(enqueue_request("q", delay=seconds(3600)))
    ahead = at(enq.job.run_at) - at(enq.job.created_at)
    assert timedelta(minutes=59) < ahead <= timedelta(minutes=61)
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], wait=ms(300)))).jobs
    await make_due(db, enq.job.id)
    assert (await lease_one(stub, "q")).job.id == enq.job.id


async def test_run_at_seven_days_ahead_is_accepted_and_waits(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    run_at = Timestamp()
    run_at.FromDatetime(datetime.now(UTC) + timedelta(days=7))
    enq = await stub.Enqueue(enqueue_request("q", run_at=run_at))
    assert enq.job.run_at == run_at and enq.job.state == Job.STATE_PENDING
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    await make_due(db, enq.job.id)
    assert (await lease_one(stub, "q")).job.id == enq.job.id


async def test_short_delay_is_leased_once_due_by_a_waiting_lease(stub: Stub) -> None:
    enq = await stub.Enqueue(enqueue_request("q", delay=ms(300)))
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    lj = await lease_one(stub, "q", wait=seconds(10))
    assert lj.job.id == enq.job.id
    started = (await stub.GetJob(qs.GetJobRequest(job_id=enq.job.id))).job.attempts[0].started_at
    assert at(started) >= at(enq.job.run_at)


async def test_run_at_in_the_past_runs_now(stub: Stub) -> None:
    run_at = Timestamp()
    run_at.FromDatetime(datetime(2001, 1, 1, tzinfo=UTC))
    enq = await stub.Enqueue(enqueue_request("q", run_at=run_at))
    assert (await lease_one(stub, "q")).job.id == enq.job.id


# ---- priority


async def test_higher_priority_first_then_oldest(stub: Stub) -> None:
    ids = {}
    for name, priority in [("low", -5), ("mid_old", 0), ("high_old", 10), ("mid_new", 0), ("high_new", 10)]:
        ids[(await stub.Enqueue(enqueue_request("q", {"name": name}, priority=priority))).job.id] = name
    order = [ids[(await lease_one(stub, "q")).job.id] for _ in ids]
    assert order == ["high_old", "high_new", "mid_old", "mid_new", "low"]


async def test_one_lease_of_many_jobs_returns_them_in_priority_order(stub: Stub) -> None:
    for p in (1, 3, 2, 3):
        await stub.Enqueue(enqueue_request("a" if p % 2 else "b", priority=p))
    resp = await stub.Lease(qs.LeaseRequest(queues=["a", "b"], max_jobs=3))
    assert [lj.job.priority for lj in resp.jobs] == [3, 3, 2]


# ---- idempotency


async def test_same_key_same_queue_returns_the_original(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    first = await stub.Enqueue(enqueue_request("q", {"v": 1}, idempotency_key="order-5512"))
    second = await stub.Enqueue(enqueue_request("q", {"v": 2}, idempotency_key="order-5512"))
    assert not first.deduplicated and second.deduplicated
    assert second.job == first.job  # the original, not the second payload
    other_queue = await stub.Enqueue(enqueue_request("other", {"v": 3}, idempotency_key="order-5512"))
    assert not other_queue.deduplicated and other_queue.job.id != first.job.id
    assert await count(db) == 2


async def test_key_is_remembered_after_the_job_finished(stub: Stub) -> None:
    first = await stub.Enqueue(enqueue_request("q", idempotency_key="once"))
    lj = await lease_one(stub, "q")
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    again = await stub.Enqueue(enqueue_request("q", idempotency_key="once"))
    assert again.deduplicated and again.job.id == first.job.id and again.job.state == Job.STATE_SUCCEEDED


async def test_concurrent_enqueues_with_one_key_make_one_job(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    results = await asyncio.gather(
        *(stub.Enqueue(enqueue_request("q", {"i": i}, idempotency_key="race")) for i in range(20))
    )
    assert len({r.job.id for r in results}) == 1
    assert sorted(r.deduplicated for r in results) == [False] + [True] * 19
    assert await count(db) == 1


# ---- per-key concurrency


async def test_concurrency_limit_holds_under_concurrent_leases(app: App, stub: Stub, db, db_url: str) -> None:  # type: ignore[no-untyped-def]
    limit, total, workers = 3, 30, 10
    await stub.EnqueueBatch(
        qs.EnqueueBatchRequest(
            jobs=[enqueue_request("q", {"i": i}, concurrency_key="k", concurrency_limit=limit) for i in range(total)]
        )
    )
    held = 0  # jobs our workers hold: incremented after a lease arrives, decremented before its ack
    finished = 0
    peak = 0
    done = asyncio.Event()

    async def worker(n: int) -> None:
        nonlocal held, finished, peak
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            s = queue_service_pb2_grpc.QueueServiceStub(ch)
            while not done.is_set():
                resp = await s.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1 + n % 3, wait=ms(300), worker_id=f"w{n}"))
                held += len(resp.jobs)
                peak = max(peak, held)
                assert held <= limit, f"{held} running with key k"
                for lj in resp.jobs:
                    await asyncio.sleep(0)  # let the other workers' Lease calls interleave
                    held -= 1
                    await s.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))
                    finished += 1
                if finished == total:
                    done.set()

    async def watch_database() -> int:
        most = 0
        conn = await asyncpg.connect(db_url)
        try:
            while not done.is_set():
                running = await conn.fetchval(
                    "SELECT count(*) FROM spool.jobs WHERE state = 'running' AND concurrency_key = 'k'"
                )
                most = max(most, running)
                assert running <= limit, f"{running} running with key k"
                await asyncio.sleep(0.005)  # a sampling interval, not a wait for anything
        finally:
            await conn.close()
        return most

    watcher = asyncio.create_task(watch_database())
    try:
        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(workers))), timeout=60)
    finally:
        done.set()  # a failed worker must not leave the watcher running
        most = await watcher
    assert finished == total and peak >= 1 and most <= limit
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'") == total
    assert await count(db, "attempts") == total


async def test_keyed_jobs_at_their_limit_do_not_block_other_jobs(stub: Stub) -> None:
    for _ in range(3):
        await stub.Enqueue(enqueue_request("q", priority=5, concurrency_key="k", concurrency_limit=1))
    free = (await stub.Enqueue(enqueue_request("q"))).job.id
    first = await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10))
    assert len(first.jobs) == 2 and first.jobs[1].job.id == free
    assert not (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10))).jobs
    keyed = first.jobs[0]
    await stub.Ack(qs.AckRequest(job_id=keyed.job.id, lease_token=keyed.lease_token))
    assert len((await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10))).jobs) == 1


async def test_concurrency_key_without_limit_runs_one_at_a_time(stub: Stub) -> None:
    for _ in range(2):
        enq = await stub.Enqueue(enqueue_request("q", concurrency_key="serial"))
    assert enq.job.concurrency_limit == 1
    assert len((await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5))).jobs) == 1
