"""Every request of QueueService and AdminService, fuzzed with Hypothesis (tests/fuzz/messages.py),
and raw garbage as request bodies. Whatever arrives: no INTERNAL or UNKNOWN (nor any code bad input
should not get), health SERVING afterwards, and a refused request changes no row.

The default profile runs a bounded number of examples per method; `pytest tests/fuzz
--hypothesis-profile=fuzz-long` runs many more (profiles in tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests import conftest
from tests.conftest import fresh_database
from tests.fuzz.messages import Requests, garbage_bodies
from tests.helpers import enqueue_request

# The long profile runs for many minutes per method.
pytestmark = pytest.mark.timeout(3600)

Code = grpc.StatusCode
METHODS = [
    *qs.DESCRIPTOR.services_by_name["QueueService"].methods,
    *adm.DESCRIPTOR.services_by_name["AdminService"].methods,
]
REFUSALS = {Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.RESOURCE_EXHAUSTED}
# Calls that may wait by design (a long poll, a stream on an unfinished job) get a short deadline.
WAITING = {"Lease", "WatchJob", "WatchCancels", "TailJobs"}

# The rows a refused call must leave as they were (spool.watched, the watch registry, may change).
FINGERPRINT = """
SELECT (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM spool.jobs t)
    || (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM spool.attempts t)
    || (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.name), '')) FROM spool.queues t)
"""


@dataclass(frozen=True)
class Target:
    channel: grpc.aio.Channel
    db: asyncpg.Connection
    requests: Requests
    bases: dict[str, Message]  # a valid request of each method

    def around(self, method: MethodDescriptor) -> st.SearchStrategy[Message]:
        base = self.bases.get(method.name)
        return self.requests.around(base) if base is not None else self.requests.of(method.input_type)

    async def fingerprint(self) -> str:
        return str(await self.db.fetchval(FINGERPRINT))

    async def call(self, method: MethodDescriptor, body: bytes) -> Code:
        path = f"/{method.containing_service.full_name}/{method.name}"
        timeout = 0.5 if method.name in WAITING else 60
        try:
            if method.server_streaming:
                stream = self.channel.unary_stream(path, request_serializer=bytes, response_deserializer=bytes)
                async for _ in stream(body, timeout=timeout):
                    pass
            else:
                unary = self.channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
                await unary(body, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return err.code()
        return Code.OK

    async def check(self, method: MethodDescriptor, body: bytes) -> None:
        """The three properties, for one request."""
        before = await self.fingerprint()
        code = await self.call(method, body)
        if code is Code.DEADLINE_EXCEEDED and method.name in WAITING:
            return  # a valid long poll or stream, cut short: it may have leased, and given back
        assert code is Code.OK or code in REFUSALS, f"{method.name} answered {code.name} to {body[:300]!r}"
        if code is not Code.OK:
            assert await self.fingerprint() == before, f"refused {method.name} changed rows: {body[:300]!r}"
        health = await health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def _seed(channel: grpc.aio.Channel) -> tuple[dict[str, Message], list[str], list[str]]:
    """Jobs in every state and a paused queue. Returns a valid request of each method, to fuzz
    around, with the ids, lease tokens and page token seen."""
    stub = queue_service_pb2_grpc.QueueServiceStub(channel)
    enqueue = enqueue_request("q", max_attempts=3)
    ids = [(await stub.Enqueue(enqueue)).job.id for _ in range(6)]
    leased = await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=5, lease_duration=Duration(seconds=3600)))
    running, acked, dead, cancelled, other = leased.jobs
    await stub.Ack(qs.AckRequest(job_id=acked.job.id, lease_token=acked.lease_token, result=b"{}"))
    await stub.Nack(qs.NackRequest(job_id=dead.job.id, lease_token=dead.lease_token, retryable=False))
    await stub.CancelJob(qs.CancelJobRequest(job_id=cancelled.job.id))
    await admin_service_pb2_grpc.AdminServiceStub(channel).PauseQueue(adm.PauseQueueRequest(name="paused"))
    page = await stub.ListJobs(qs.ListJobsRequest(page_size=1))
    held = {"job_id": running.job.id, "lease_token": running.lease_token}
    bases: dict[str, Message] = {
        "Enqueue": enqueue,
        "EnqueueBatch": qs.EnqueueBatchRequest(jobs=[enqueue, enqueue_request("other")]),
        "Lease": qs.LeaseRequest(queues=["q"], max_jobs=1),
        "Heartbeat": qs.HeartbeatRequest(**held),
        "HeartbeatBatch": qs.HeartbeatBatchRequest(heartbeats=[qs.HeartbeatRequest(**held)]),
        "Ack": qs.AckRequest(job_id=other.job.id, lease_token=other.lease_token, result=b'{"ok": true}'),
        "AckBatch": qs.AckBatchRequest(acks=[qs.AckRequest(**held)]),
        "Nack": qs.NackRequest(**held, error=job_pb2.JobError(type="E", message="m")),
        "Requeue": qs.RequeueRequest(job_ids=[dead.job.id]),
        "CancelJob": qs.CancelJobRequest(job_id=ids[-1]),
        "GetJob": qs.GetJobRequest(job_id=running.job.id),
        "ListJobs": qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=["q"]), page_size=2),
        "WatchJob": qs.WatchJobRequest(job_id=acked.job.id),
        "WatchCancels": qs.WatchCancelsRequest(worker_id="w1"),
        "GetQueue": adm.GetQueueRequest(name="q"),
        "PauseQueue": adm.PauseQueueRequest(name="other"),
        "ResumeQueue": adm.ResumeQueueRequest(name="paused"),
        "UpdateQueue": adm.UpdateQueueRequest(name="q", defaults=adm.QueueDefaults(max_attempts=2)),
        "DeleteQueue": adm.DeleteQueueRequest(name="other"),
    }
    tokens = [j.lease_token for j in leased.jobs]
    return bases, ids + tokens, [page.next_page_token]


@pytest.fixture(scope="module")
async def target(admin_url: str, template_db: str) -> AsyncIterator[Target]:
    """One server and database for all examples of the module."""
    async with fresh_database(admin_url, template_db) as url:
        app = App(conftest.test_settings(), url)
        await app.start()
        db = await asyncpg.connect(url)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                bases, ids, tokens = await _seed(channel)
                requests = Requests(ids, ["q", "paused", "other"], tokens, int(time.time()))
                yield Target(channel, db, requests, bases)
        finally:
            await db.close()
            await app.stop()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@given(data=st.data())
async def test_fuzzed_requests(target: Target, method: MethodDescriptor, data: st.DataObject) -> None:
    request: Message = data.draw(target.around(method), label="request")
    await target.check(method, request.SerializeToString())


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@given(data=st.data())
async def test_garbage_bodies(target: Target, method: MethodDescriptor, data: st.DataObject) -> None:
    body = data.draw(garbage_bodies(target.around(method)), label="body")
    await target.check(method, body)
