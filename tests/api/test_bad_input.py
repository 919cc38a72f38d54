"""Bad input (issue 3, item 6): each case gets its status code, ErrorInfo reason and the field named,
and writes nothing. None may yield INTERNAL or UNKNOWN."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests import conftest
from tests.api.support import (
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
from tests.conftest import fresh_database
from tests.helpers import enqueue_request, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
TOO_BIG = grpc.StatusCode.RESOURCE_EXHAUSTED
MIB = 1024 * 1024
YEAR_9999 = 253402300799  # 9999-12-31T23:59:59Z, the last second a Timestamp may hold


@dataclass(frozen=True)
class Shared:
    channel: grpc.aio.Channel
    stub: Stub
    db: asyncpg.Connection
    canary: str  # a pending job in queue "q": no refused call may touch it

    async def assert_untouched(self) -> None:
        assert await count(self.db) == 1
        assert await count(self.db, "attempts") == 0
        assert (await job_row(self.db, self.canary))["state"] == "pending"


@pytest.fixture(scope="module")
async def shared(admin_url: str, template_db: str) -> AsyncIterator[Shared]:
    """One server and database for the calls that must write nothing (a database per case would
    dominate the run time); each of those tests checks that nothing was written."""
    async with fresh_database(admin_url, template_db) as url:
        app = App(conftest.test_settings(), url)
        await app.start()
        db = await asyncpg.connect(url)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
                stub = queue_service_pb2_grpc.QueueServiceStub(ch)
                canary = (await stub.Enqueue(enqueue_request("q"))).job.id
                yield Shared(ch, stub, db, canary)
        finally:
            await db.close()
            await app.stop()


def days(n: float) -> Duration:
    return seconds(n * 86400)


def enqueue(**fields: Any) -> qs.EnqueueRequest:
    """A valid request with some fields replaced (payload as raw bytes)."""
    req = enqueue_request("q")
    for name, value in fields.items():
        if isinstance(value, dict) and name == "headers":
            req.headers.update(value)
        elif isinstance(value, (Timestamp, Duration, job_pb2.BackoffPolicy)):
            getattr(req, name).CopyFrom(value)
        else:
            setattr(req, name, value)
    return req


def invalid(field: str, **fields: Any) -> Any:
    return pytest.param(fields, INVALID, "INVALID_ARGUMENT", field, id=field + ":" + ",".join(fields))


def bad_json(payload: bytes, name: str) -> Any:
    return pytest.param({"payload": payload}, INVALID, "INVALID_ARGUMENT", "payload", id=f"payload:{name}")


ENQUEUE_CASES = [
    invalid("queue", queue=""),
    invalid("queue", queue="q" * 129),
    invalid("queue", queue="two words"),
    invalid("queue", queue="a\x00b"),
    invalid("queue", queue="tab\there"),
    pytest.param(
        {"payload": b"x" * (MIB + 1), "content_type": "application/octet-stream"},
        TOO_BIG,
        "PAYLOAD_TOO_LARGE",
        "payload",
        id="payload:over-1MiB",
    ),
    pytest.param(
        {"payload": b'{"s": "' + b"x" * MIB + b'"}'},
        TOO_BIG,
        "PAYLOAD_TOO_LARGE",
        "payload",
        id="payload:json-over-1MiB",
    ),
    bad_json(b"{", "truncated"),
    bad_json(b"", "empty"),
    bad_json(b"{'a': 1}", "single-quotes"),
    bad_json(b'"\xff\xfe"', "invalid-utf8"),
    bad_json(b'"\xed\xa0\x80"', "utf8-encoded-surrogate"),
    bad_json(b'"a\\u0000b"', "escaped-nul"),
    bad_json(b'{"k\\u0000": 1}', "escaped-nul-in-key"),
    bad_json(b'[{"deep": ["\\u0000"]}]', "escaped-nul-nested"),
    bad_json(b'"a\x00b"', "raw-nul"),
    bad_json(b'"\\ud800"', "unpaired-surrogate"),
    bad_json(b'{"\\udc00": 1}', "unpaired-surrogate-in-key"),
    bad_json(b"NaN", "nan"),
    bad_json(b'{"x": Infinity}', "infinity"),
    bad_json(b"[-Infinity]", "minus-infinity"),
    bad_json(b"1e1000000", "number-too-large"),
    bad_json(b"1e-16384", "number-too-precise"),
    bad_json(b"[" * 100_000 + b"]" * 100_000, "nesting-too-deep"),
    invalid("content_type", content_type="application/json\x00"),
    invalid("content_type", content_type="x" * 256),
    invalid("headers['a\\x00b']", headers={"a\x00b": "v"}),
    invalid("headers['k']", headers={"k": "v\x00"}),
    invalid("headers['']", headers={"": "v"}),
    invalid("headers", headers={f"h{i}": "v" for i in range(65)}),
    invalid("headers['big']", headers={"big": "v" * 9000}),
    invalid("headers", headers={f"h{i}": "v" * 1000 for i in range(10)}),
    invalid("priority", priority=32768),
    invalid("priority", priority=-32769),
    invalid("priority", priority=-(2**31)),
    invalid("max_attempts", max_attempts=0),
    invalid("max_attempts", max_attempts=101),
    invalid("max_attempts", max_attempts=-1),
    invalid("lease_duration", lease_duration=Duration()),
    invalid("lease_duration", lease_duration=Duration(seconds=-5)),
    invalid("lease_duration", lease_duration=Duration(seconds=12 * 3600 + 1)),
    invalid("lease_duration", lease_duration=Duration(seconds=10**12)),
    invalid("lease_duration", lease_duration=Duration(seconds=2**62)),
    invalid("lease_duration", lease_duration=Duration(seconds=1, nanos=-1)),
    invalid("lease_duration", lease_duration=Duration(nanos=10**9)),
    invalid("attempt_timeout", attempt_timeout=Duration()),
    invalid("attempt_timeout", attempt_timeout=Duration(seconds=-1)),
    invalid("attempt_timeout", attempt_timeout=days(8)),
    invalid("delay", delay=Duration(seconds=-1)),
    invalid("delay", delay=days(31)),
    invalid("delay", delay=Duration(seconds=315576000001)),
    invalid("run_at", run_at=Timestamp(seconds=YEAR_9999)),
    invalid("run_at", run_at=Timestamp(seconds=YEAR_9999 + 1)),
    invalid("run_at", run_at=Timestamp(seconds=-(2**62))),
    invalid("run_at", run_at=Timestamp(seconds=2**62)),
    invalid("run_at", run_at=Timestamp(seconds=1_700_000_000, nanos=-1)),
    invalid("run_at", run_at=Timestamp(seconds=1_700_000_000, nanos=10**9)),
    invalid("idempotency_key", idempotency_key="k\x00"),
    invalid("idempotency_key", idempotency_key="k" * 257),
    invalid("concurrency_key", concurrency_key="k\x00"),
    invalid("concurrency_limit", concurrency_key="k", concurrency_limit=-1),
    invalid("concurrency_limit", concurrency_limit=3),
    invalid("backoff.kind", backoff=job_pb2.BackoffPolicy(kind=99)),  # type: ignore[arg-type]
    invalid("backoff.initial_interval", backoff=job_pb2.BackoffPolicy(initial_interval=Duration())),
    invalid("backoff.initial_interval", backoff=job_pb2.BackoffPolicy(initial_interval=days(365))),
    invalid(
        "backoff.max_interval", backoff=job_pb2.BackoffPolicy(initial_interval=seconds(10), max_interval=seconds(5))
    ),
    invalid("backoff.multiplier", backoff=job_pb2.BackoffPolicy(multiplier=float("nan"))),
    invalid("backoff.multiplier", backoff=job_pb2.BackoffPolicy(multiplier=float("inf"))),
    invalid("backoff.multiplier", backoff=job_pb2.BackoffPolicy(multiplier=0.5)),
    invalid("backoff.multiplier", backoff=job_pb2.BackoffPolicy(multiplier=1e9)),
]


@pytest.mark.parametrize(("fields", "code", "reason", "field"), ENQUEUE_CASES)
async def test_enqueue_refuses(shared: Shared, fields: dict[str, Any], code, reason: str, field: str) -> None:  # type: ignore[no-untyped-def]
    await expect_error(shared.stub.Enqueue(enqueue(**fields)), code, reason, field)
    await shared.assert_untouched()


@pytest.mark.parametrize(("fields", "code", "reason", "field"), ENQUEUE_CASES[:12])
async def test_enqueue_batch_names_the_item(
    shared: Shared, fields: dict[str, Any], code, reason: str, field: str
) -> None:  # type: ignore[no-untyped-def]
    batch = qs.EnqueueBatchRequest(jobs=[enqueue(), enqueue(), enqueue(**fields)])
    await expect_error(shared.stub.EnqueueBatch(batch), code, reason, f"jobs[2].{field}")
    await shared.assert_untouched()


async def test_enqueue_batch_over_the_limit(shared: Shared) -> None:
    batch = qs.EnqueueBatchRequest(jobs=[enqueue_request("q", {}) for _ in range(1001)])
    await expect_error(shared.stub.EnqueueBatch(batch), TOO_BIG, "BATCH_TOO_LARGE", "jobs")
    await shared.assert_untouched()


async def test_enqueue_batch_of_the_limit_is_accepted(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[enqueue_request("q", {}) for _ in range(1000)]))
    assert await count(db) == 1000


async def test_enqueue_batch_empty(shared: Shared) -> None:
    await expect_error(shared.stub.EnqueueBatch(qs.EnqueueBatchRequest()), INVALID, "INVALID_ARGUMENT", "jobs")
    await shared.assert_untouched()


@pytest.mark.parametrize(
    "fields",
    [
        {"payload": b"x" * MIB, "content_type": "application/octet-stream"},
        {"queue": "q" * 128},
        {"priority": -32768},
        {"max_attempts": 100},
        {"run_at": Timestamp(seconds=0)},
        {"delay": days(30)},
        {"lease_duration": Duration(seconds=12 * 3600)},
        {"attempt_timeout": days(7)},
        {"idempotency_key": "k" * 256},
        {"payload": b'{"emoji": "\\ud83d\\ude00", "n": 1e300, "tiny": 1e-300}'},
        {"payload": b'"backslash \\\\u0000 is text"'},
        {"payload": b"", "content_type": "text/plain"},
    ],
    ids=lambda f: ",".join(f),
)
async def test_enqueue_accepts_the_limits(stub: Stub, fields: dict[str, Any]) -> None:
    enq = await stub.Enqueue(enqueue(**fields))
    assert enq.job.state == Job.STATE_PENDING


async def test_payload_limit_is_configurable(db_url: str, db) -> None:  # type: ignore[no-untyped-def]
    settings = conftest.test_settings()
    settings = replace(settings, limits=replace(settings.limits, max_payload_bytes=100))
    app = App(settings, db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = queue_service_pb2_grpc.QueueServiceStub(ch)
            await stub.Enqueue(enqueue(payload=b'"' + b"x" * 98 + b'"'))
            await expect_error(
                stub.Enqueue(enqueue(payload=b'"' + b"x" * 99 + b'"')), TOO_BIG, "PAYLOAD_TOO_LARGE", "payload"
            )
    finally:
        await app.stop()
    assert await count(db) == 1


# ---- Lease


LEASE_CASES = [
    pytest.param(qs.LeaseRequest(), "queues", id="no-queues"),
    pytest.param(qs.LeaseRequest(queues=[""]), "queues[0]", id="empty-queue"),
    pytest.param(qs.LeaseRequest(queues=["q", "a\x00"]), "queues[1]", id="nul-queue"),
    pytest.param(qs.LeaseRequest(queues=["q" * 129]), "queues[0]", id="long-queue"),
    pytest.param(qs.LeaseRequest(queues=["q"], max_jobs=1001), "max_jobs", id="max-jobs-1001"),
    pytest.param(qs.LeaseRequest(queues=["q"], max_jobs=-1), "max_jobs", id="max-jobs-negative"),
    pytest.param(qs.LeaseRequest(queues=["q"], lease_duration=Duration()), "lease_duration", id="lease-zero"),
    pytest.param(qs.LeaseRequest(queues=["q"], lease_duration=Duration(seconds=-1)), "lease_duration", id="lease-neg"),
    pytest.param(qs.LeaseRequest(queues=["q"], lease_duration=days(1)), "lease_duration", id="lease-over-max"),
    pytest.param(
        qs.LeaseRequest(queues=["q"], lease_duration=Duration(seconds=2**62)), "lease_duration", id="lease-huge"
    ),
    pytest.param(qs.LeaseRequest(queues=["q"], wait=seconds(61)), "wait", id="wait-over-60s"),
    pytest.param(qs.LeaseRequest(queues=["q"], wait=Duration(seconds=-1)), "wait", id="wait-negative"),
    pytest.param(qs.LeaseRequest(queues=["q"], worker_id="w\x00"), "worker_id", id="nul-worker"),
    pytest.param(qs.LeaseRequest(queues=["q"], worker_id="w" * 257), "worker_id", id="long-worker"),
]


@pytest.mark.parametrize(("request_", "field"), LEASE_CASES)
async def test_lease_refuses_and_claims_nothing(shared: Shared, request_: qs.LeaseRequest, field: str) -> None:
    await expect_error(shared.stub.Lease(request_), INVALID, "INVALID_ARGUMENT", field)
    await shared.assert_untouched()


async def test_lease_max_jobs_zero_means_one(stub: Stub) -> None:
    for _ in range(3):
        await stub.Enqueue(enqueue_request("q"))
    assert len((await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=0))).jobs) == 1
    assert len((await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=1000))).jobs) == 2


async def test_lease_wait_of_60s_is_accepted(stub: Stub) -> None:
    enq = await stub.Enqueue(enqueue_request("q"))
    resp = await stub.Lease(qs.LeaseRequest(queues=["q"], wait=seconds(60)))
    assert [lj.job.id for lj in resp.jobs] == [enq.job.id]


# ---- Heartbeat, Ack, Nack with a held lease: a malformed call leaves the lease as it was


def _hb(lj: qs.LeasedJob, **f: Any) -> qs.HeartbeatRequest:
    return _fenced(qs.HeartbeatRequest(), lj, f)


def _ack(lj: qs.LeasedJob, **f: Any) -> qs.AckRequest:
    return _fenced(qs.AckRequest(), lj, f)


def _nack(lj: qs.LeasedJob, **f: Any) -> qs.NackRequest:
    return _fenced(qs.NackRequest(), lj, f)


def _fenced(req: Any, lj: qs.LeasedJob, fields: dict[str, Any]) -> Any:
    req.job_id, req.lease_token = lj.job.id, lj.lease_token
    for name, value in fields.items():
        if isinstance(value, (Duration, job_pb2.JobError)):
            getattr(req, name).CopyFrom(value)
        else:
            setattr(req, name, value)
    return req


MALFORMED_IDS = [
    "",
    "abc",
    "-1",
    "0",
    "1.5",
    "+7",
    " 7",
    "0x10",
    "99999999999999999999",
    "9223372036854775808",
    "\uff11\uff12",
    "1\x00",
]
Build = Callable[[qs.LeasedJob], Any]


@pytest.mark.parametrize("field", ["job_id", "lease_token"])
@pytest.mark.parametrize(
    ("rpc", "make"), [("Heartbeat", _hb), ("Ack", _ack), ("Nack", _nack)], ids=["Heartbeat", "Ack", "Nack"]
)
async def test_malformed_ids_are_refused_and_keep_the_lease(  # type: ignore[no-untyped-def]
    stub: Stub, db, rpc: str, make: Callable[..., Any], field: str
) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=3))
    lj = await lease_one(stub, "q")
    before = await job_row(db, lj.job.id)
    for bad in MALFORMED_IDS:
        await expect_error(getattr(stub, rpc)(make(lj, **{field: bad})), INVALID, "INVALID_ARGUMENT", field)
    assert await job_row(db, lj.job.id) == before
    assert await count(db, "attempts") == 0


def fenced(
    rpc: str, build: Build, field: str, code: grpc.StatusCode = INVALID, reason: str = "INVALID_ARGUMENT"
) -> Any:
    return pytest.param(rpc, build, code, reason, field, id=f"{rpc}-{field}")


FENCED_CASES = [
    fenced("Heartbeat", lambda lj: _hb(lj, lease_duration=Duration()), "lease_duration"),
    fenced("Heartbeat", lambda lj: _hb(lj, lease_duration=days(1)), "lease_duration"),
    fenced("Heartbeat", lambda lj: _hb(lj, lease_duration=Duration(seconds=2**62)), "lease_duration"),
    fenced("Heartbeat", lambda lj: _hb(lj, checkpoint=b"x" * (MIB + 1)), "checkpoint", TOO_BIG, "PAYLOAD_TOO_LARGE"),
    fenced("Ack", lambda lj: _ack(lj, result=b"x" * (MIB + 1)), "result", TOO_BIG, "PAYLOAD_TOO_LARGE"),
    fenced("Ack", lambda lj: _ack(lj, result=b"{}", result_content_type="a\x00"), "result_content_type"),
    fenced("Ack", lambda lj: _ack(lj, result=b"{oops"), "result"),
    fenced("Ack", lambda lj: _ack(lj, result=b"NaN"), "result"),
    fenced("Ack", lambda lj: _ack(lj, result=b'{"s": "a\\u0000b"}'), "result"),
    fenced("Ack", lambda lj: _ack(lj, result=b'"\xff"', result_content_type="application/problem+json"), "result"),
    fenced("Nack", lambda lj: _nack(lj, error=job_pb2.JobError(message="boom\x00")), "error.message"),
    fenced("Nack", lambda lj: _nack(lj, error=job_pb2.JobError(message="m" * (64 * 1024 + 1))), "error.message"),
    fenced("Nack", lambda lj: _nack(lj, error=job_pb2.JobError(type="E\x00")), "error.type"),
    fenced("Nack", lambda lj: _nack(lj, error=job_pb2.JobError(details="\x00")), "error.details"),
    fenced("Nack", lambda lj: _nack(lj, retry_after=Duration(seconds=-1)), "retry_after"),
    fenced("Nack", lambda lj: _nack(lj, retry_after=days(31)), "retry_after"),
    fenced("Nack", lambda lj: _nack(lj, retry_after=Duration(seconds=2**62)), "retry_after"),
    fenced("Nack", lambda lj: _nack(lj, checkpoint=b"x" * (MIB + 1)), "checkpoint", TOO_BIG, "PAYLOAD_TOO_LARGE"),
]


@pytest.mark.parametrize(("rpc", "build", "code", "reason", "field"), FENCED_CASES)
async def test_fenced_call_refuses_and_keeps_the_lease(  # type: ignore[no-untyped-def]
    stub: Stub, db, rpc: str, build: Build, code, reason: str, field: str
) -> None:
    await stub.Enqueue(enqueue_request("q", max_attempts=3))
    lj = await lease_one(stub, "q")
    before = await job_row(db, lj.job.id)
    await expect_error(getattr(stub, rpc)(build(lj)), code, reason, field)
    assert await job_row(db, lj.job.id) == before
    assert await count(db, "attempts") == 0
    await stub.Ack(qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token))  # the lease still holds


@pytest.mark.parametrize(
    ("rpc", "request_", "field"),
    [
        ("GetJob", qs.GetJobRequest(job_id="x"), "job_id"),
        ("GetJob", qs.GetJobRequest(), "job_id"),
        ("CancelJob", qs.CancelJobRequest(job_id="-3"), "job_id"),
        ("Requeue", qs.RequeueRequest(job_ids=["1", "nope"]), "job_ids[1]"),
        ("Requeue", qs.RequeueRequest(), "job_ids"),
    ],
)
async def test_malformed_job_ids(shared: Shared, rpc: str, request_: Any, field: str) -> None:
    await expect_error(getattr(shared.stub, rpc)(request_), INVALID, "INVALID_ARGUMENT", field)
    await shared.assert_untouched()


async def test_requeue_over_the_batch_limit(shared: Shared) -> None:
    request = qs.RequeueRequest(job_ids=[str(i) for i in range(1, 1002)])
    await expect_error(shared.stub.Requeue(request), TOO_BIG, "BATCH_TOO_LARGE", "job_ids")
    await shared.assert_untouched()


# ---- unknown jobs and wrong states


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("GetJob", qs.GetJobRequest(job_id="424242")),
        ("CancelJob", qs.CancelJobRequest(job_id="424242")),
        ("Requeue", qs.RequeueRequest(job_ids=["424242"])),
        ("Heartbeat", qs.HeartbeatRequest(job_id="424242", lease_token="1")),
        ("Ack", qs.AckRequest(job_id="424242", lease_token="1")),
        ("Nack", qs.NackRequest(job_id="424242", lease_token="1")),
        ("GetJob", qs.GetJobRequest(job_id=str(2**63 - 1))),
    ],
)
async def test_unknown_job_id(shared: Shared, rpc: str, request_: Any) -> None:
    field = "job_ids" if rpc == "Requeue" else "job_id"
    err = await expect_error(getattr(shared.stub, rpc)(request_), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND", field)
    job_id = request_.job_ids[0] if rpc == "Requeue" else request_.job_id
    assert job_id in (err.details() or "")
    await shared.assert_untouched()


async def test_ack_after_the_lease_expired(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await expire_lease(db, lj.job.id)  # expired, not yet reaped
    before = await job_row(db, lj.job.id)
    for call in (stub.Ack(_ack(lj, result=b"1")), stub.Heartbeat(_hb(lj)), stub.Nack(_nack(lj))):
        await expect_lease_lost(call)
    assert await job_row(db, lj.job.id) == before
    assert await count(db, "attempts") == 0


async def test_ack_after_the_lease_expired_and_was_reaped(stub: Stub, app: App, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q", lease_duration=ms(100))
    await expire_lease(db, lj.job.id)
    assert await reaper(app).run_once() == 1
    before = await job_row(db, lj.job.id)
    await expect_lease_lost(stub.Ack(_ack(lj, result=b"1")))
    assert await job_row(db, lj.job.id) == before


async def test_double_ack(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await stub.Ack(_ack(lj, result=b'"first"'))
    before = await job_row(db, lj.job.id)
    await expect_lease_lost(stub.Ack(_ack(lj, result=b'"second"')))
    after = await job_row(db, lj.job.id)
    assert after == before and after["result"] == b'"first"'
    assert await count(db, "attempts") == 1


async def test_nack_of_a_cancelled_job(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q", max_attempts=3))
    lj = await lease_one(stub, "q")
    await stub.CancelJob(qs.CancelJobRequest(job_id=lj.job.id))
    assert (await stub.Nack(_nack(lj))).job.state == Job.STATE_CANCELLED
    before = await job_row(db, lj.job.id)
    await expect_lease_lost(stub.Nack(_nack(lj)))
    await expect_lease_lost(stub.Ack(_ack(lj)))
    assert await job_row(db, lj.job.id) == before
    assert await count(db, "attempts") == 1


async def test_heartbeat_with_another_leases_token(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    await stub.Enqueue(enqueue_request("q"))
    a = await lease_one(stub, "q")
    b = await lease_one(stub, "q")
    before = await job_row(db, a.job.id)
    swapped = qs.HeartbeatRequest(job_id=a.job.id, lease_token=b.lease_token)
    await expect_lease_lost(stub.Heartbeat(swapped))
    assert await job_row(db, a.job.id) == before


@pytest.mark.parametrize("state", ["pending", "running"])
async def test_requeue_of_an_unfinished_job(stub: Stub, db, state: str) -> None:  # type: ignore[no-untyped-def]
    enq = await stub.Enqueue(enqueue_request("q"))
    if state == "running":
        await lease_one(stub, "q")
    before = await job_row(db, enq.job.id)
    err = await expect_error(
        stub.Requeue(qs.RequeueRequest(job_ids=[enq.job.id])),
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
        "job_ids",
    )
    assert enq.job.id in (err.details() or "") and state.upper() in (err.details() or "")
    assert await job_row(db, enq.job.id) == before


async def test_requeue_of_a_succeeded_job_needs_include_succeeded(stub: Stub, db) -> None:  # type: ignore[no-untyped-def]
    await stub.Enqueue(enqueue_request("q"))
    lj = await lease_one(stub, "q")
    await stub.Ack(_ack(lj))
    before = await job_row(db, lj.job.id)
    err = await expect_error(
        stub.Requeue(qs.RequeueRequest(job_ids=[lj.job.id])),
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
        "job_ids",
    )
    assert "include_succeeded" in (err.details() or "")
    assert await job_row(db, lj.job.id) == before


# ---- malformed protobuf from a client that does not check UTF-8 (protobuf.js does not)


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("Enqueue", b"\x0a\x01\xff\x12\x02{}"),  # queue = b"\xff"
        ("Lease", b"\x0a\x02\xed\xa0"),  # queues[0] = half a UTF-8-encoded surrogate
        ("GetJob", b"\x0a\x03\xc3\x28\x31"),  # job_id with a broken two-byte sequence
        ("Enqueue", b"\x0a\xff\xff\xff\xff\x0f"),  # a length beyond the message
    ],
)
async def test_undecodable_request_is_invalid_argument(shared: Shared, method: str, raw: bytes) -> None:
    call = shared.channel.unary_unary(
        f"/spool.v1.QueueService/{method}", request_serializer=bytes, response_deserializer=bytes
    )
    await expect_error(call(raw), INVALID, "INVALID_ARGUMENT", "request")
    await shared.assert_untouched()


async def test_mutated_requests_never_yield_internal_or_unknown(app: App, stub: Stub) -> None:
    """Byte-level mutations of valid requests: whatever decodes must be validated, whatever does not
    must be refused as bad input."""
    await stub.Enqueue(enqueue_request("q", max_attempts=5))
    lj = await lease_one(stub, "q")
    seeds: list[tuple[str, bytes]] = [
        ("Enqueue", enqueue(headers={"k": "v"}, priority=3, delay=seconds(1), idempotency_key="i").SerializeToString()),
        ("EnqueueBatch", qs.EnqueueBatchRequest(jobs=[enqueue(), enqueue(queue="r")]).SerializeToString()),
        ("Lease", qs.LeaseRequest(queues=["q", "r"], max_jobs=2, lease_duration=seconds(5)).SerializeToString()),
        ("Heartbeat", _hb(lj, lease_duration=seconds(5), checkpoint=b"c").SerializeToString()),
        ("Ack", _ack(lj, result=b"{}").SerializeToString()),
        ("Nack", _nack(lj, error=job_pb2.JobError(type="E", message="m"), retry_after=seconds(1)).SerializeToString()),
        ("Requeue", qs.RequeueRequest(job_ids=[lj.job.id]).SerializeToString()),
        ("GetJob", qs.GetJobRequest(job_id=lj.job.id).SerializeToString()),
        ("CancelJob", qs.CancelJobRequest(job_id="999").SerializeToString()),
        ("AckBatch", qs.AckBatchRequest(acks=[_ack(lj), _ack(lj, result=b"1")]).SerializeToString()),
        ("HeartbeatBatch", qs.HeartbeatBatchRequest(heartbeats=[_hb(lj), _hb(lj)]).SerializeToString()),
    ]
    rng = random.Random(3)
    allowed = {grpc.StatusCode.OK, INVALID, TOO_BIG, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        for method, seed in seeds:
            call = ch.unary_unary(
                f"/spool.v1.QueueService/{method}", request_serializer=bytes, response_deserializer=bytes
            )
            for _ in range(40):
                raw = bytearray(seed)
                for _ in range(rng.randint(1, 3)):
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
                try:
                    await call(bytes(raw), timeout=5)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as err:
                    code = err.code()
                    if code is grpc.StatusCode.DEADLINE_EXCEEDED and method == "Lease":
                        continue  # a mutated wait of up to 60 s is a valid long poll
                assert code in allowed, f"{method} {bytes(raw)!r}: {code}"
