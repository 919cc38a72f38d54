"""Every repeated field of every request (maps and field masks included, at any depth) has a cap,
held before its items are validated, on both doors: one entry over the cap is refused with the code,
reason and field, and writes nothing. A request to a method that carries no payload is bounded in
bytes before it is decoded, so a 20 MB list never reaches the decoder."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2, pipeline_service_pb2, schedule_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.api import counts
from spoold.app import SERVICES, App
from spoold.config import Limits
from spoold.errors import SpoolError
from tests.helpers import error_info
from tests.http.conftest import connect_info, curl, fingerprint, needs_curl

LIM = Limits()
INVALID = ("INVALID_ARGUMENT", "INVALID_ARGUMENT")
BATCH = ("RESOURCE_EXHAUSTED", "BATCH_TOO_LARGE")
Q, A, P = "spool.v1.QueueService", "spool.v1.AdminService", "spool.v1.PipelineService"


def more(cap: int, item: Callable[[int], Any]) -> list[Any]:
    return [item(i) for i in range(cap + 1)]


def job(**fields: Any) -> qs.EnqueueRequest:
    return qs.EnqueueRequest(queue="q", payload=b"{}", **fields)


HEADERS = {str(i): "v" for i in range(LIM.max_headers + 1)}
QUEUES = more(counts.MAX_LEASE_QUEUES, lambda i: f"q{i}")
FILTER_CAP = counts.CAPS["spool.v1.JobFilter.states"](LIM)

# (field's full name, service, method, request with one entry too many, (code, reason), field named)
CASES: list[tuple[str, str, str, Message, tuple[str, str], str]] = [
    ("spool.v1.EnqueueRequest.headers", Q, "Enqueue", job(headers=HEADERS), INVALID, "headers"),
    (
        "spool.v1.EnqueueBatchRequest.jobs",
        Q,
        "EnqueueBatch",
        qs.EnqueueBatchRequest(jobs=more(LIM.max_batch, lambda i: job())),
        BATCH,
        "jobs",
    ),
    (
        "spool.v1.EnqueueRequest.headers",
        Q,
        "EnqueueBatch",
        qs.EnqueueBatchRequest(jobs=[job(), job(headers=HEADERS)]),
        INVALID,
        "jobs[1].headers",
    ),
    ("spool.v1.LeaseRequest.queues", Q, "Lease", qs.LeaseRequest(queues=QUEUES), INVALID, "queues"),
    (
        "spool.v1.HeartbeatBatchRequest.heartbeats",
        Q,
        "HeartbeatBatch",
        qs.HeartbeatBatchRequest(
            heartbeats=more(LIM.max_batch, lambda i: qs.HeartbeatRequest(job_id="1", lease_token="1"))
        ),
        BATCH,
        "heartbeats",
    ),
    (
        "spool.v1.AckBatchRequest.acks",
        Q,
        "AckBatch",
        qs.AckBatchRequest(acks=more(LIM.max_batch, lambda i: qs.AckRequest(job_id="1", lease_token="1"))),
        BATCH,
        "acks",
    ),
    (
        "spool.v1.LeaseRequest.queues",
        Q,
        "Ack",
        qs.AckRequest(job_id="1", lease_token="1", next=qs.LeaseRequest(queues=QUEUES)),
        INVALID,
        "next.queues",
    ),
    (
        "spool.v1.LeaseRequest.queues",
        Q,
        "AckBatch",
        qs.AckBatchRequest(acks=[qs.AckRequest(job_id="1", lease_token="1", next=qs.LeaseRequest(queues=QUEUES))]),
        INVALID,
        "acks[0].next.queues",
    ),
    (
        "spool.v1.RequeueRequest.job_ids",
        Q,
        "Requeue",
        qs.RequeueRequest(job_ids=more(LIM.max_batch, str)),
        BATCH,
        "job_ids",
    ),
    (
        "spool.v1.JobFilter.states",
        Q,
        "Requeue",
        qs.RequeueRequest(filter=job_pb2.JobFilter(states=[4] * (FILTER_CAP + 1))),
        INVALID,
        "filter.states",
    ),
    (
        "spool.v1.JobFilter.queues",
        Q,
        "ListJobs",
        qs.ListJobsRequest(filter=job_pb2.JobFilter(queues=more(1000, str))),
        INVALID,
        "filter.queues",
    ),
    (
        "spool.v1.JobFilter.states",
        Q,
        "ListJobs",
        qs.ListJobsRequest(filter=job_pb2.JobFilter(states=[4] * (FILTER_CAP + 1))),
        INVALID,
        "filter.states",
    ),
    (
        "spool.v1.JobFilter.statuses",
        Q,
        "ListJobs",
        qs.ListJobsRequest(filter=job_pb2.JobFilter(statuses=[4] * (FILTER_CAP + 1))),
        INVALID,
        "filter.statuses",
    ),
    (
        "google.protobuf.FieldMask.paths",
        A,
        "UpdateQueue",
        adm.UpdateQueueRequest(name="q", update_mask=FieldMask(paths=["max_attempts"] * (counts.MAX_MASK_PATHS + 1))),
        INVALID,
        "update_mask.paths",
    ),
    (
        "spool.v1.CreateApiKeyRequest.scopes",
        A,
        "CreateApiKey",
        adm.CreateApiKeyRequest(name="k", scopes=["read"] * (counts.MAX_KEY_SCOPES + 1)),
        INVALID,
        "scopes",
    ),
    (
        "spool.v1.CreateApiKeyRequest.queues",
        A,
        "CreateApiKey",
        adm.CreateApiKeyRequest(name="k", scopes=["read"], queues=more(counts.MAX_KEY_QUEUES, str)),
        INVALID,
        "queues",
    ),
    (
        "spool.v1.Schedule.next_fire_times",
        A,
        "CreateSchedule",
        adm.CreateScheduleRequest(
            schedule=schedule_pb2.Schedule(name="s", next_fire_times=more(counts.DEFAULT_CAP, lambda i: {"seconds": i}))
        ),
        INVALID,
        "schedule.next_fire_times",
    ),
    (
        "spool.v1.EnqueueRequest.headers",
        A,
        "CreateSchedule",
        adm.CreateScheduleRequest(schedule=schedule_pb2.Schedule(name="s", template=job(headers=HEADERS))),
        INVALID,
        "schedule.template.headers",
    ),
    (
        "google.protobuf.FieldMask.paths",
        A,
        "UpdateSchedule",
        adm.UpdateScheduleRequest(
            schedule=schedule_pb2.Schedule(name="s"),
            update_mask=FieldMask(paths=["cron"] * (counts.MAX_MASK_PATHS + 1)),
        ),
        INVALID,
        "update_mask.paths",
    ),
    (
        "spool.v1.EnqueuePipelineRequest.steps",
        P,
        "EnqueuePipeline",
        pipeline_service_pb2.EnqueuePipelineRequest(
            steps=more(counts.MAX_STEPS, lambda i: pipeline_service_pb2.StepSpec(name=f"s{i}"))
        ),
        INVALID,
        "steps",
    ),
    (
        "spool.v1.StepSpec.depends_on",
        P,
        "EnqueuePipeline",
        pipeline_service_pb2.EnqueuePipelineRequest(
            steps=[pipeline_service_pb2.StepSpec(name="s", depends_on=more(counts.MAX_STEPS, str))]
        ),
        INVALID,
        "steps[0].depends_on",
    ),
    (
        "spool.v1.AckRequest.follow_ups",
        Q,
        "Ack",
        qs.AckRequest(job_id="1", lease_token="1", follow_ups=more(counts.MAX_STEPS, lambda i: qs.FollowUp(job=job()))),
        INVALID,
        "follow_ups",
    ),
    (
        "spool.v1.FollowUp.depends_on",
        Q,
        "AckBatch",
        qs.AckBatchRequest(
            acks=[
                qs.AckRequest(
                    job_id="1", lease_token="1", follow_ups=[qs.FollowUp(depends_on=more(counts.MAX_STEPS, str))]
                )
            ]
        ),
        INVALID,
        "acks[0].follow_ups[0].depends_on",
    ),
    ("spool.v1.TailJobsRequest.queues", Q, "TailJobs", qs.TailJobsRequest(queues=more(1000, str)), INVALID, "queues"),
    (
        "spool.v1.TailJobsRequest.kinds",
        Q,
        "TailJobs",
        qs.TailJobsRequest(kinds=[1] * (FILTER_CAP + 1)),
        INVALID,
        "kinds",
    ),
    (
        "spool.v1.TailJobsRequest.states",
        Q,
        "TailJobs",
        qs.TailJobsRequest(states=[1] * (FILTER_CAP + 1)),
        INVALID,
        "states",
    ),
    (
        "spool.v1.ListPipelinesRequest.states",
        P,
        "ListPipelines",
        pipeline_service_pb2.ListPipelinesRequest(states=[1] * (FILTER_CAP + 1)),
        INVALID,
        "states",
    ),
    (
        "spool.v1.EnqueueRequest.headers",
        P,
        "EnqueuePipeline",
        pipeline_service_pb2.EnqueuePipelineRequest(
            steps=[pipeline_service_pb2.StepSpec(name="s", job=job(headers=HEADERS))]
        ),
        INVALID,
        "steps[0].job.headers",
    ),
]


STREAMING = {"TailJobs", "WatchJob"}


def repeated_request_fields() -> set[str]:
    """Every repeated field that a request of any Spool method can hold, at any depth."""
    found: set[str] = set()
    seen: set[str] = set()

    def walk(d: Descriptor) -> None:
        if d.full_name in seen:
            return
        seen.add(d.full_name)
        for f in d.fields:
            if f.is_repeated:
                found.add(f.full_name)
            if f.message_type is not None and not f.message_type.GetOptions().map_entry:
                walk(f.message_type)

    from google.protobuf import descriptor_pool

    for name in SERVICES:
        for m in descriptor_pool.Default().FindServiceByName(name).methods:
            walk(m.input_type)
    return found


def test_every_repeated_request_field_has_its_own_cap_and_a_case() -> None:
    fields = repeated_request_fields()
    assert fields - set(counts.CAPS) == set(), "give each new repeated request field a cap in api/counts.py"
    assert fields - {c[0] for c in CASES} == set(), "and a case here"


@pytest.fixture
async def untouched(app: App, db: asyncpg.Connection) -> Any:
    before = await fingerprint(db)
    yield
    assert await fingerprint(db) == before


def _id(case: tuple[Any, ...]) -> str:
    return f"{case[2]}:{case[5]}"


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("case", CASES, ids=_id)
async def test_one_entry_over_the_cap_over_grpc(channel: grpc.aio.Channel, case: tuple[Any, ...]) -> None:
    _, service, method, request, (code, reason), field = case
    call = channel.unary_unary(f"/{service}/{method}", request_serializer=lambda m: m.SerializeToString())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request)
    assert caught.value.code().name == code, caught.value.details()
    info = error_info(caught.value)
    assert (info.reason, info.metadata.get("field")) == (reason, field), info


@needs_curl
@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("case", CASES, ids=_id)
async def test_one_entry_over_the_cap_over_http(app: App, case: tuple[Any, ...]) -> None:
    _, service, method, request, (code, reason), field = case
    url = f"http://127.0.0.1:{app.http_port}/{service}/{method}"
    body = json_format.MessageToJson(request).encode()
    if method in STREAMING:  # Connect's streaming form: enveloped, the error in the end-of-stream message
        framed = b"\x00" + struct.pack(">I", len(body)) + body
        answer = await curl("-H", "Content-Type: application/connect+json", "--data-binary", "@-", url, stdin=framed)
        error = json.loads(answer.body[5:])["error"]
    else:
        answer = await curl("-H", "Content-Type: application/json", "--data-binary", "@-", url, stdin=body)
        error = answer.json()
    assert error["code"] == code.lower(), answer
    info = connect_info(error)
    assert (info.reason, info.metadata.get("field")) == (reason, field), answer


async def test_a_large_request_to_a_small_method_is_refused_before_decoding(
    channel: grpc.aio.Channel, app: App
) -> None:
    huge = qs.ListJobsRequest(filter=job_pb2.JobFilter(states=[4] * (20 * 1024 * 1024)))
    call = channel.unary_unary("/spool.v1.QueueService/ListJobs", request_serializer=lambda m: m.SerializeToString())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(huge)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value).reason == "BODY_TOO_LARGE"


@needs_curl
async def test_a_large_http_body_to_a_small_method_is_refused_before_decoding(app: App) -> None:
    # Past the 64 KiB of a method without payloads, yet small enough that curl has sent it all
    # before the server answers from its headers and closes.
    body = b'{"filter": {"states": [' + b",".join([b'"STATE_DEAD"'] * 8_000) + b"]}}"
    url = f"http://127.0.0.1:{app.http_port}/spool.v1.QueueService/ListJobs"
    answer = await curl("-H", "Content-Type: application/json", "--data-binary", "@-", url, stdin=body)
    assert answer.status in (413, 429) and answer.reason == "BODY_TOO_LARGE", answer
    cancel = f"http://127.0.0.1:{app.http_port}/v1/jobs/1:cancel"
    rest = await curl("-H", "Content-Type: application/json", "--data-binary", "@-", cancel, stdin=body)
    assert (rest.status, rest.reason) == (413, "BODY_TOO_LARGE"), rest


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_one_entry_over_the_cap_in_json_before_it_is_parsed(case: tuple[Any, ...]) -> None:
    """The HTTP door's JSON codec holds the same caps on the JSON tree, before json_format runs."""
    _, _, _, request, (_, reason), field = case
    tree = json.loads(json_format.MessageToJson(request))
    with pytest.raises(SpoolError) as caught:
        counts.check_json(tree, type(request)(), LIM)
    assert (caught.value.reason, caught.value.metadata.get("field")) == (reason, field)
