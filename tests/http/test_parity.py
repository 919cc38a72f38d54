"""The same requests over gRPC and over Connect give the same answers, for every RPC of every
service. Two servers on two fresh databases replay one script, one called with gRPC stubs, the
other with the Connect clients protoc-gen-connectrpc generated (spool/v1/*_connect.py, JSON on
the wire); answers are compared whole, less what differs from run to run (times, key secrets).
A method the script does not name (one added to the API later) is still called, with an empty
request, on both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from connectrpc.compat import google_protobuf_json_codec
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from spool.v1 import admin_service_connect, job_pb2, queue_service_connect
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import queue_service_pb2 as qs
from spoold.app import ADMIN_SERVICE, QUEUE_SERVICE, App
from spoold.http.connect import snake
from tests import conftest
from tests.conftest import fresh_database
from tests.http.conftest import http_settings

METHODS = [*QUEUE_SERVICE.methods, *ADMIN_SERVICE.methods]
# Differ from run to run: the secret of a new key and its id.
RANDOM = {"spool.v1.CreateApiKeyResponse.key", "spool.v1.ApiKey.id"}
# Durations measured, not configured.
MEASURED = {"spool.v1.Attempt.duration", "spool.v1.QueueStats.lag"}


@dataclass(frozen=True)
class Failed:
    code: str
    message: str
    reason: str


Answer = Message | list[Message] | Failed
Call = Callable[[MethodDescriptor, Message], Awaitable[Answer]]


def _blank(message: Message) -> Message:
    """The message less its times and what is random."""
    for field, value in message.ListFields():
        name = field.full_name
        if (
            (field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp")
            or name in RANDOM
            or name in MEASURED
        ):
            message.ClearField(field.name)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in value if field.is_repeated else [value]:
                _blank(item)
    return message


def comparable(answer: Answer) -> Any:
    if isinstance(answer, Failed):
        return answer
    messages = answer if isinstance(answer, list) else [answer]
    return [json_format.MessageToDict(_blank(m)) for m in messages]


def _grpc_caller(channel: grpc.aio.Channel) -> Call:
    async def call(method: MethodDescriptor, request: Message) -> Answer:
        path = f"/{method.containing_service.full_name}/{method.name}"
        out = _message_class(method)
        try:
            if method.server_streaming:
                stream = channel.unary_stream(path, request_serializer=_serialize, response_deserializer=out.FromString)
                return [m async for m in stream(request, timeout=30)]
            unary = channel.unary_unary(path, request_serializer=_serialize, response_deserializer=out.FromString)
            result: Message = await unary(request, timeout=30)
            return result
        except grpc.aio.AioRpcError as err:
            status = rpc_status.from_call(err)
            reason = ""
            for detail in status.details if status else []:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    reason = info.reason
            return Failed(err.code().name, err.details() or "", reason)

    return call


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _message_class(method: MethodDescriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(method.output_type)


def _connect_caller(clients: dict[str, Any]) -> Call:
    async def call(method: MethodDescriptor, request: Message) -> Answer:
        function = getattr(clients[method.containing_service.full_name], snake(method.name))
        try:
            if method.server_streaming:
                return [m async for m in function(request)]
            result: Message = await function(request)
            return result
        except ConnectError as err:
            reasons = [
                error_details_pb2.ErrorInfo.FromString(d.message_bytes).reason
                for d in err.details
                if d.type_name == "google.rpc.ErrorInfo"
            ]
            code = err.code.name if err.code.name != "CANCELED" else "CANCELLED"
            return Failed(code, err.message, reasons[0] if reasons else "")

    return call


def _seconds(n: int) -> Duration:
    return Duration(seconds=n)


async def script(call: Call) -> list[tuple[str, Answer]]:
    """One run: every RPC, with answers that succeed and answers that refuse."""
    answers: list[tuple[str, Answer]] = []
    by_name = {m.name: m for m in METHODS}

    async def do(name: str, request: Message) -> Any:
        answer = await call(by_name[name], request)
        answers.append((name, answer))
        return answer

    payload = json.dumps({"n": 1}).encode()
    await do("Enqueue", qs.EnqueueRequest(queue="q1", payload=payload, max_attempts=3, priority=5))
    await do("Enqueue", qs.EnqueueRequest(queue="q1", payload=payload, idempotency_key="k"))
    await do("Enqueue", qs.EnqueueRequest(queue="q1", payload=payload, idempotency_key="k"))
    await do("Enqueue", qs.EnqueueRequest(queue="", payload=payload))
    await do("Enqueue", qs.EnqueueRequest(queue="q1", payload=b"{oops"))
    await do(
        "EnqueueBatch",
        qs.EnqueueBatchRequest(
            jobs=[qs.EnqueueRequest(queue="q2", payload=payload), qs.EnqueueRequest(queue="q2", payload=payload)]
        ),
    )
    await do("EnqueueBatch", qs.EnqueueBatchRequest())
    leased = await do("Lease", qs.LeaseRequest(queues=["q1"], max_jobs=2, lease_duration=_seconds(600), worker_id="w"))
    first, second = leased.jobs
    held = {"job_id": first.job.id, "lease_token": first.lease_token}
    await do("Heartbeat", qs.HeartbeatRequest(**held, checkpoint=b"{}"))
    await do("Heartbeat", qs.HeartbeatRequest(job_id=first.job.id, lease_token="999"))
    await do(
        "HeartbeatBatch",
        qs.HeartbeatBatchRequest(
            heartbeats=[qs.HeartbeatRequest(**held), qs.HeartbeatRequest(job_id="999", lease_token="1")]
        ),
    )
    await do("Ack", qs.AckRequest(**held, result=b'{"ok": true}'))
    await do("Ack", qs.AckRequest(**held))
    error = job_pb2.JobError(type="Boom", message="it broke")
    await do("Nack", qs.NackRequest(job_id=second.job.id, lease_token=second.lease_token, error=error, retryable=False))
    await do("Requeue", qs.RequeueRequest(job_ids=[second.job.id]))
    await do("Requeue", qs.RequeueRequest(job_ids=[first.job.id]))
    again = await do("Lease", qs.LeaseRequest(queues=["q1"], max_jobs=1, lease_duration=_seconds(600)))
    (third,) = again.jobs
    await do("AckBatch", qs.AckBatchRequest(acks=[qs.AckRequest(job_id=third.job.id, lease_token=third.lease_token)]))
    pending = await do("Enqueue", qs.EnqueueRequest(queue="q3", payload=payload))
    await do("CancelJob", qs.CancelJobRequest(job_id=pending.job.id))
    await do("CancelJob", qs.CancelJobRequest(job_id=first.job.id))
    await do("GetJob", qs.GetJobRequest(job_id=first.job.id))
    await do("GetJob", qs.GetJobRequest(job_id="999"))
    await do("GetJob", qs.GetJobRequest(job_id="x"))
    await do("ListJobs", qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=["q1", "q2"]), page_size=10))
    await do("WatchJob", qs.WatchJobRequest(job_id=first.job.id))
    await do("WatchJob", qs.WatchJobRequest(job_id="999"))
    # A tail never ends on its own: only its refusals can be compared.
    await do("TailJobs", qs.TailJobsRequest(kinds=[99]))
    await do("TailJobs", qs.TailJobsRequest(queues=["bad name"]))
    await do("ListQueues", adm.ListQueuesRequest())
    await do("GetQueue", adm.GetQueueRequest(name="q1"))
    await do("GetQueue", adm.GetQueueRequest(name="nowhere"))
    await do("PauseQueue", adm.PauseQueueRequest(name="q2"))
    await do("ResumeQueue", adm.ResumeQueueRequest(name="q2"))
    await do("UpdateQueue", adm.UpdateQueueRequest(name="q2", defaults=adm.QueueDefaults(max_attempts=4)))
    await do("DeleteQueue", adm.DeleteQueueRequest(name="q2"))
    await do("DeleteQueue", adm.DeleteQueueRequest(name="q3", force=True))
    created = await do("CreateApiKey", adm.CreateApiKeyRequest(name="ci", scopes=["read"], queues=["q1"]))
    await do("CreateApiKey", adm.CreateApiKeyRequest(name="bad", scopes=["nope"]))
    await do("ListApiKeys", adm.ListApiKeysRequest())
    await do("RevokeApiKey", adm.RevokeApiKeyRequest(id=created.api_key.id))
    await do("RevokeApiKey", adm.RevokeApiKeyRequest(id="nokey"))
    for method in METHODS:
        if method.name not in {name for name, _ in answers}:  # a method added since: an empty request
            await do(method.name, _message_class_in(method)())
    return answers


def _message_class_in(method: MethodDescriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(method.input_type)


@pytest.fixture
async def doors(admin_url: str, template_db: str) -> AsyncIterator[tuple[Call, Call]]:
    async with fresh_database(admin_url, template_db) as one, fresh_database(admin_url, template_db) as two:
        by_grpc, by_connect = App(conftest.test_settings(), one), App(http_settings(), two)
        await by_grpc.start()
        await by_connect.start()
        base = f"http://127.0.0.1:{by_connect.http_port}"
        codec = google_protobuf_json_codec()
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{by_grpc.port}") as channel,
                queue_service_connect.QueueServiceClient(base, codec=codec) as queue,
                admin_service_connect.AdminServiceClient(base, codec=codec) as admin,
            ):
                clients = {QUEUE_SERVICE.full_name: queue, ADMIN_SERVICE.full_name: admin}
                yield _grpc_caller(channel), _connect_caller(clients)
        finally:
            await by_connect.stop()
            await by_grpc.stop()


async def test_every_rpc_answers_the_same_over_grpc_and_connect(doors: tuple[Call, Call]) -> None:
    by_grpc, by_connect = doors
    expected, actual = await script(by_grpc), await script(by_connect)
    assert {name for name, _ in actual} == {m.name for m in METHODS}
    assert any(isinstance(a, Failed) for _, a in actual) and any(not isinstance(a, Failed) for _, a in actual)
    for (name, want), (_, got) in zip(expected, actual, strict=True):
        assert comparable(got) == comparable(want), name
