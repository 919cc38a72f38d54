"""A large request's repeated fields are counted before it is decoded (api/shallow.py): a request
past a cap is refused as counts.check would refuse it, without decoding its entries first."""

from __future__ import annotations

import grpc
import pytest
from connectrpc.errors import ConnectError

from spool.v1 import queue_service_pb2 as qs
from spoold.api import shallow
from spoold.config import Limits
from spoold.errors import BatchTooLarge, InvalidArgument
from spoold.http import connect
from tests.helpers import expect_error

LIMITS = Limits()


def many_headers(entries: int) -> bytes:
    """An EnqueueBatch whose one job has `entries` tiny headers (about 11 bytes each)."""
    req = qs.EnqueueBatchRequest()
    job = req.jobs.add(queue="q", payload=b"{}")
    for n in range(entries):
        job.headers[f"{n:x}"] = ""
    return req.SerializeToString()


def test_headers_past_their_cap_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        shallow.check(qs.EnqueueBatchRequest, many_headers(100_000), LIMITS)
    assert refused.value.field == "jobs[0].headers"
    assert "100000 entries is over the limit of 64" in refused.value.message


def test_a_batch_past_its_cap_keeps_its_reason() -> None:
    raw = qs.EnqueueBatchRequest(jobs=[qs.EnqueueRequest(queue="q")] * 1001).SerializeToString()
    with pytest.raises(BatchTooLarge):
        shallow.check(qs.EnqueueBatchRequest, raw, LIMITS)


def test_nested_entries_are_counted_at_every_depth() -> None:
    ack = qs.AckRequest(job_id="1", lease_token="1")
    follow = ack.follow_ups.add()
    follow.job.queue = "q"
    for n in range(65):
        follow.job.headers[str(n)] = "v"
    raw = qs.AckBatchRequest(acks=[qs.AckRequest(job_id="2", lease_token="2"), ack]).SerializeToString()
    with pytest.raises(InvalidArgument) as refused:
        shallow.check(qs.AckBatchRequest, raw, LIMITS)
    assert refused.value.field == "acks[1].follow_ups[0].job.headers"


def test_a_valid_request_passes_and_a_malformed_one_is_left_to_the_decoder() -> None:
    valid = qs.EnqueueBatchRequest(
        jobs=[qs.EnqueueRequest(queue="q", payload=b"x" * 8000, headers={"a": "b"}) for _ in range(1000)]
    )
    shallow.check(qs.EnqueueBatchRequest, valid.SerializeToString(), LIMITS)
    shallow.check(qs.EnqueueBatchRequest, b"\x0a\xff\xff\xff\xff\x0f", LIMITS)


async def test_a_request_of_a_million_tiny_headers_is_refused_before_it_is_decoded(channel: grpc.aio.Channel) -> None:
    raw = many_headers(700_000)  # under the request's byte budget (the batch limit plus 1 MiB)
    assert len(raw) < LIMITS.max_batch_bytes + 1024 * 1024
    call = channel.unary_unary(
        "/spool.v1.QueueService/EnqueueBatch", request_serializer=bytes, response_deserializer=bytes
    )
    await expect_error(call(raw), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "jobs[0].headers")


def test_connect_protobuf_bodies_are_counted_before_they_are_decoded() -> None:
    binary = connect.codecs(LIMITS)[0]
    with pytest.raises(ConnectError) as refused:
        binary.decode(many_headers(100_000), qs.EnqueueBatchRequest)
    assert "jobs[0].headers" in str(refused.value)
