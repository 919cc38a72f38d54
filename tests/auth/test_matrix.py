"""Every RPC of QueueService and AdminService against every kind of credential: the documented code
and ErrorInfo reason, and no row changed by a refused call (last_used_at aside: it is bookkeeping)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import schedule_pb2 as sp
from spoold.app import App
from tests.auth.conftest import bearer, expired_at, key_id, make_key
from tests.helpers import error_info

Metadata = tuple[tuple[str, str], ...]
OK = grpc.StatusCode.OK
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
Q = "orders"


@dataclass
class World:
    """Stubs and the jobs each RPC's request names; built with an admin key before the cases run."""

    queue: queue_service_pb2_grpc.QueueServiceStub
    admin: admin_service_pb2_grpc.AdminServiceStub
    admin_md: Metadata
    pending: str = ""
    leased: qs.LeasedJob | None = None
    dead: str = ""
    bulk: str = ""

    async def prepare(self) -> None:
        md = self.admin_md
        body = json.dumps({"n": 1}).encode()
        self.dead = (await self.queue.Enqueue(qs.EnqueueRequest(queue=Q, payload=body), metadata=md)).job.id
        dead = (await self.queue.Lease(qs.LeaseRequest(queues=[Q], max_jobs=1), metadata=md)).jobs[0]
        nack = qs.NackRequest(job_id=dead.job.id, lease_token=dead.lease_token, retryable=False)
        await self.queue.Nack(nack, metadata=md)
        for _ in range(2):
            await self.queue.Enqueue(qs.EnqueueRequest(queue=Q, payload=body), metadata=md)
        self.leased = (await self.queue.Lease(qs.LeaseRequest(queues=[Q], max_jobs=1), metadata=md)).jobs[0]
        self.pending = (await self.queue.Enqueue(qs.EnqueueRequest(queue=Q, payload=body), metadata=md)).job.id
        await self.admin.PauseQueue(adm.PauseQueueRequest(name="spare"), metadata=md)  # settings, no jobs
        start = adm.StartBulkOperationRequest(action=adm.BulkOperation.ACTION_REQUEUE, filter=_NOTHING)
        self.bulk = (await self.admin.StartBulkOperation(start, metadata=md)).operation.id
        for name in ("nightly", "spare-schedule"):
            schedule = sp.Schedule(name=name, cron="0 3 * * *", template=qs.EnqueueRequest(queue=Q, payload=body))
            await self.admin.CreateSchedule(adm.CreateScheduleRequest(schedule=schedule), metadata=md)


Call = Callable[[World, Metadata], Awaitable[Any]]


def _held(w: World) -> tuple[str, str]:
    assert w.leased is not None
    return w.leased.job.id, w.leased.lease_token


async def _watch(w: World, md: Metadata) -> Any:
    call = w.queue.WatchJob(qs.WatchJobRequest(job_id=w.pending), metadata=md)
    try:
        async for first in call:
            return first
    finally:
        call.cancel()


async def _tail(w: World, md: Metadata) -> Any:
    """A TailJobs stream is accepted when it is still waiting for events at its deadline."""
    call = w.queue.TailJobs(qs.TailJobsRequest(queues=[Q]), metadata=md, timeout=3)
    try:
        return await call.read()
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return None
        raise
    finally:
        call.cancel()


async def _watch_cancels(w: World, md: Metadata) -> Any:
    """Served (the stream stays open, nothing to hear) or refused at once."""
    call = w.queue.WatchCancels(qs.WatchCancelsRequest(worker_id="w"), metadata=md, timeout=0.5)
    try:
        async for first in call:
            return first
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        call.cancel()
    return None


_ENQ = qs.EnqueueRequest(queue=Q, payload=b'{"new": true}')
# A filter of the queue that matches no job: the bulk operations it starts change nothing.
_NOTHING = job_pb2.JobFilter(queues=[Q], idempotency_key="no such key")
_BULK = adm.StartBulkOperationRequest(action=adm.BulkOperation.ACTION_REQUEUE, filter=_NOTHING)

# RPC -> (the scope it needs, the call, what a key on another queue gets: code, reason).
CASES: dict[str, tuple[str, Call, tuple[grpc.StatusCode, str]]] = {
    "Enqueue": ("enqueue", lambda w, md: w.queue.Enqueue(_ENQ, metadata=md), (DENIED, "QUEUE_NOT_ALLOWED")),
    "EnqueueBatch": (
        "enqueue",
        lambda w, md: w.queue.EnqueueBatch(qs.EnqueueBatchRequest(jobs=[_ENQ]), metadata=md),
        (DENIED, "QUEUE_NOT_ALLOWED"),
    ),
    "Lease": (
        "work",
        lambda w, md: w.queue.Lease(qs.LeaseRequest(queues=[Q], max_jobs=5), metadata=md),
        (DENIED, "QUEUE_NOT_ALLOWED"),
    ),
    "Heartbeat": (
        "work",
        lambda w, md: w.queue.Heartbeat(
            qs.HeartbeatRequest(job_id=_held(w)[0], lease_token=_held(w)[1], checkpoint=b"{}"), metadata=md
        ),
        (NOT_FOUND, "JOB_NOT_FOUND"),
    ),
    "HeartbeatBatch": (
        "work",
        lambda w, md: w.queue.HeartbeatBatch(
            qs.HeartbeatBatchRequest(heartbeats=[qs.HeartbeatRequest(job_id=_held(w)[0], lease_token=_held(w)[1])]),
            metadata=md,
        ),
        (OK, "JOB_NOT_FOUND"),
    ),
    "Ack": (
        "work",
        lambda w, md: w.queue.Ack(qs.AckRequest(job_id=_held(w)[0], lease_token=_held(w)[1]), metadata=md),
        (NOT_FOUND, "JOB_NOT_FOUND"),
    ),
    "AckBatch": (
        "work",
        lambda w, md: w.queue.AckBatch(
            qs.AckBatchRequest(acks=[qs.AckRequest(job_id=_held(w)[0], lease_token=_held(w)[1])]), metadata=md
        ),
        (OK, "JOB_NOT_FOUND"),
    ),
    "Nack": (
        "work",
        lambda w, md: w.queue.Nack(qs.NackRequest(job_id=_held(w)[0], lease_token=_held(w)[1]), metadata=md),
        (NOT_FOUND, "JOB_NOT_FOUND"),
    ),
    "Requeue": (
        "admin",
        lambda w, md: w.queue.Requeue(qs.RequeueRequest(job_ids=[w.dead]), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "CancelJob": (
        "admin",
        lambda w, md: w.queue.CancelJob(qs.CancelJobRequest(job_id=w.pending), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "GetJob": (
        "read",
        lambda w, md: w.queue.GetJob(qs.GetJobRequest(job_id=w.pending), metadata=md),
        (NOT_FOUND, "JOB_NOT_FOUND"),
    ),
    "ListJobs": ("read", lambda w, md: w.queue.ListJobs(qs.ListJobsRequest(), metadata=md), (OK, "")),
    "WatchJob": ("read", _watch, (NOT_FOUND, "JOB_NOT_FOUND")),
    "TailJobs": ("read", _tail, (DENIED, "QUEUE_NOT_ALLOWED")),
    "WatchCancels": ("work", _watch_cancels, (OK, "")),
    "ListQueues": ("read", lambda w, md: w.admin.ListQueues(adm.ListQueuesRequest(), metadata=md), (OK, "")),
    "GetQueue": (
        "read",
        lambda w, md: w.admin.GetQueue(adm.GetQueueRequest(name=Q), metadata=md),
        (NOT_FOUND, "QUEUE_NOT_FOUND"),
    ),
    "PauseQueue": (
        "admin",
        lambda w, md: w.admin.PauseQueue(adm.PauseQueueRequest(name=Q), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "ResumeQueue": (
        "admin",
        lambda w, md: w.admin.ResumeQueue(adm.ResumeQueueRequest(name=Q), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "UpdateQueue": (
        "admin",
        lambda w, md: w.admin.UpdateQueue(
            adm.UpdateQueueRequest(name=Q, defaults=adm.QueueDefaults(max_attempts=3)), metadata=md
        ),
        (DENIED, "SCOPE_MISSING"),
    ),
    "DeleteQueue": (
        "admin",
        lambda w, md: w.admin.DeleteQueue(adm.DeleteQueueRequest(name="spare"), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "CreateApiKey": (
        "admin",
        lambda w, md: w.admin.CreateApiKey(adm.CreateApiKeyRequest(name="n", scopes=["read"], queues=[Q]), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "ListApiKeys": (
        "admin",
        lambda w, md: w.admin.ListApiKeys(adm.ListApiKeysRequest(), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "RevokeApiKey": (
        "admin",
        lambda w, md: w.admin.RevokeApiKey(adm.RevokeApiKeyRequest(id=key_id(w.admin_md[0][1][7:])), metadata=md),
        (DENIED, "SCOPE_MISSING"),
    ),
    "GetQueueActivity": (
        "read",
        lambda w, md: w.admin.GetQueueActivity(adm.GetQueueActivityRequest(), metadata=md),
        (OK, ""),
    ),
    "CountJobs": (
        "read",
        lambda w, md: w.admin.CountJobs(adm.CountJobsRequest(filter=_NOTHING), metadata=md),
        (DENIED, "QUEUE_NOT_ALLOWED"),
    ),
    "GetBulkOperation": (
        "read",
        lambda w, md: w.admin.GetBulkOperation(adm.GetBulkOperationRequest(id=w.bulk), metadata=md),
        (NOT_FOUND, "BULK_OPERATION_NOT_FOUND"),
    ),
    "ListBulkOperations": (
        "read",
        lambda w, md: w.admin.ListBulkOperations(adm.ListBulkOperationsRequest(), metadata=md),
        (OK, ""),
    ),
    "GetSchedule": (
        "read",
        lambda w, md: w.admin.GetSchedule(adm.GetScheduleRequest(name="nightly"), metadata=md),
        (NOT_FOUND, "SCHEDULE_NOT_FOUND"),
    ),
    "ListSchedules": (
        "read",
        lambda w, md: w.admin.ListSchedules(adm.ListSchedulesRequest(), metadata=md),
        (OK, ""),
    ),
    **{
        rpc: ("admin", call, (DENIED, "SCOPE_MISSING"))
        for rpc, call in {
            "StartBulkOperation": lambda w, md: w.admin.StartBulkOperation(_BULK, metadata=md),
            "AbortBulkOperation": lambda w, md: w.admin.AbortBulkOperation(
                adm.AbortBulkOperationRequest(id=w.bulk), metadata=md
            ),
            "CreateSchedule": lambda w, md: w.admin.CreateSchedule(
                adm.CreateScheduleRequest(
                    schedule=sp.Schedule(
                        name="made", interval={"seconds": 60}, template=qs.EnqueueRequest(queue=Q, payload=b"{}")
                    )
                ),
                metadata=md,
            ),
            "UpdateSchedule": lambda w, md: w.admin.UpdateSchedule(
                adm.UpdateScheduleRequest(schedule=sp.Schedule(name="nightly", cron="0 4 * * *")), metadata=md
            ),
            "DeleteSchedule": lambda w, md: w.admin.DeleteSchedule(
                adm.DeleteScheduleRequest(name="spare-schedule"), metadata=md
            ),
            "PauseSchedule": lambda w, md: w.admin.PauseSchedule(adm.PauseScheduleRequest(name="nightly"), metadata=md),
            "ResumeSchedule": lambda w, md: w.admin.ResumeSchedule(
                adm.ResumeScheduleRequest(name="nightly"), metadata=md
            ),
            "TriggerSchedule": lambda w, md: w.admin.TriggerSchedule(
                adm.TriggerScheduleRequest(name="nightly"), metadata=md
            ),
        }.items()
    },
}

SNAPSHOT = """
SELECT (SELECT coalesce(string_agg(j::text, '|' ORDER BY j.id), '') FROM spool.jobs j)
    || (SELECT coalesce(string_agg(a::text, '|' ORDER BY a.job_id, a.lease_token), '')
        FROM spool.attempts a)
    || (SELECT coalesce(string_agg(q::text, '|' ORDER BY q.name), '') FROM spool.queues q)
    || (SELECT coalesce(string_agg(s::text, '|' ORDER BY s.name), '') FROM spool.schedules s)
    || (SELECT coalesce(string_agg(f::text, '|' ORDER BY f.schedule, f.fire_time), '') FROM spool.schedule_fires f)
    || (SELECT coalesce(string_agg((k.id, k.name, k.scopes, k.queues, k.expires_at, k.revoked_at)::text, '|'
        ORDER BY k.id), '') FROM spool.api_keys k)
    || (SELECT coalesce(string_agg((b.id, b.action, b.filter, b.created_by)::text, '|' ORDER BY b.id), '')
        FROM spool.bulk_operations b)
"""


def test_every_rpc_is_in_the_matrix() -> None:
    services = (qs.DESCRIPTOR.services_by_name["QueueService"], adm.DESCRIPTOR.services_by_name["AdminService"])
    assert {m.name for s in services for m in s.methods} == set(CASES)


async def _credentials(db: asyncpg.Connection, scope: str) -> dict[str, tuple[Metadata, grpc.StatusCode, str]]:
    """Each credential case: its metadata, and the code and reason it gets (wrong queue: see CASES)."""
    others = [s for s in ("enqueue", "work", "read") if s != scope]
    right_queues = ["*"] if scope == "admin" else [Q, "other-*"]
    right = await make_key(db, [scope], right_queues)
    unknown = f"spool_{'z' * 12}_{secrets.token_hex(32)}"
    wrong_secret = f"spool_{key_id(right)}_{secrets.token_hex(32)}"
    return {
        "no key": ((), UNAUTH, "API_KEY_MISSING"),
        "malformed": ((("authorization", "Bearer not-a-key"),), UNAUTH, "API_KEY_MALFORMED"),
        "unknown": (bearer(unknown), UNAUTH, "API_KEY_INVALID"),
        "wrong secret": (bearer(wrong_secret), UNAUTH, "API_KEY_INVALID"),
        "revoked": (bearer(await make_key(db, [scope], right_queues, revoked=True)), UNAUTH, "API_KEY_REVOKED"),
        "expired": (
            bearer(await make_key(db, [scope], right_queues, expires_at=expired_at())),
            UNAUTH,
            "API_KEY_EXPIRED",
        ),
        "wrong scope": (bearer(await make_key(db, others, [Q])), DENIED, "SCOPE_MISSING"),
        "wrong queue": (bearer(await make_key(db, [s for s in (scope,) if s != "admin"] or others, ["else"])), OK, ""),
        "right key": (bearer(right), OK, ""),
    }


async def _outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str, Any]:
    try:
        answer = await call
    except grpc.aio.AioRpcError as err:
        return err.code(), error_info(err).reason, None
    return OK, "", answer


def _item_reason(answer: Any) -> str:
    """The reason of a batch answer's only item error, if any."""
    errors = [r.error.reason for r in answer.results if r.HasField("error")]
    return errors[0] if errors else ""


@pytest.mark.parametrize("rpc", sorted(CASES))
async def test_auth_matrix(rpc: str, app: App, db: asyncpg.Connection) -> None:
    scope, call, wrong_queue = CASES[rpc]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        world = World(
            queue_service_pb2_grpc.QueueServiceStub(channel),
            admin_service_pb2_grpc.AdminServiceStub(channel),
            bearer(await make_key(db, ["admin"], name="setup")),
        )
        await world.prepare()
        cases = await _credentials(db, scope)
        for case, (md, code, reason) in cases.items():
            if case == "right key":
                continue
            if case == "wrong queue":
                code, reason = wrong_queue if scope != "admin" else (DENIED, "SCOPE_MISSING")
            before = await db.fetchval(SNAPSHOT)
            got_code, got_reason, answer = await _outcome(call(world, md))
            if got_code is OK and rpc in ("HeartbeatBatch", "AckBatch"):
                got_reason = _item_reason(answer)
            if got_code is OK and rpc in ("ListJobs", "ListQueues"):
                assert not (answer.jobs if rpc == "ListJobs" else answer.queues), f"{rpc} {case}: saw {answer}"
            assert (got_code, got_reason) == (code, reason), f"{rpc} with {case}"
            assert await db.fetchval(SNAPSHOT) == before, f"{rpc} with {case} changed a row"
        md = cases["right key"][0]
        got_code, got_reason, answer = await _outcome(call(world, md))
        assert (got_code, got_reason) == (OK, ""), f"{rpc} with the right key: {got_code} {got_reason}"
        if rpc in ("HeartbeatBatch", "AckBatch"):
            assert _item_reason(answer) == ""
        if rpc in ("ListJobs", "ListQueues"):
            assert answer.jobs if rpc == "ListJobs" else answer.queues
        if rpc == "Lease":
            assert {j.job.queue for j in answer.jobs} == {Q}
