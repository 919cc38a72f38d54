"""JSON numbers that jsonb would print far larger than they were sent: each number and the document
written out in full are bounded, at Enqueue and in ListJobs' payload_contains, and what is accepted
comes back no larger than the limits say."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.api.validate import written_out
from spoold.config import Limits
from tests.api.support import Stub, count
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
TOO_BIG = grpc.StatusCode.RESOURCE_EXHAUSTED
LIMITS = Limits()
MAX = LIMITS.max_json_number_chars


def enqueue(payload: bytes) -> qs.EnqueueRequest:
    return qs.EnqueueRequest(queue="q", payload=payload)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[1e131000]", id="exponent-131000"),
        pytest.param(b'{"n": 1e400}', id="exponent-400"),
        pytest.param(b"[1e-400]", id="negative-exponent-400"),
        pytest.param(b"[0." + b"1" * MAX + b"]", id="fraction-digits"),
        pytest.param(b"[" + b"9" * (MAX + 1) + b"]", id="integer-digits"),
        pytest.param(b"[-" + b"9" * MAX + b"]", id="integer-digits-with-sign"),
        pytest.param(b'{"deep": [[{"n": 12.5e999}]]}', id="nested"),
    ],
)
async def test_a_number_too_long_written_out_is_refused(stub: Stub, db: asyncpg.Connection, payload: bytes) -> None:
    err = await expect_error(stub.Enqueue(enqueue(payload)), INVALID, "INVALID_ARGUMENT", "payload")
    assert f"longer than {MAX} characters" in (err.details() or "")
    assert await count(db) == 0


async def test_a_document_that_grows_past_the_limit_is_refused(stub: Stub, db: asyncpg.Connection) -> None:
    # 1e399 is 400 characters written out: allowed alone, but 3,000 of them (18 kB as sent) would
    # be 1.2 MB as jsonb prints them, over the 1 MiB payload limit.
    many = b"[" + b",".join([b"1e399"] * 3000) + b"]"
    assert len(many) < 20_000
    await expect_error(stub.Enqueue(enqueue(many)), TOO_BIG, "PAYLOAD_TOO_LARGE", "payload")
    assert await count(db) == 0


async def test_numbers_at_the_limit_are_stored_and_printed_within_it(stub: Stub, db: asyncpg.Connection) -> None:
    payload = (
        b'{"every_double": [1.7976931348623157e308, 5e-324, 2.2250738585072014e-308], '
        b'"big": ' + b"9" * MAX + b', "at_limit": 1e399, "small": 1e-398, "some": ' + b"[1e300]" + b"}"
    )
    job = (await stub.Enqueue(enqueue(payload))).job
    printed = await db.fetchval("SELECT payload_json::text FROM spool.jobs WHERE id = $1", int(job.id))
    assert len(job.payload) == len(printed.encode())
    assert len(job.payload) <= LIMITS.max_payload_bytes
    numbers = "jsonb_path_query(payload_json, 'strict $.** ? (@.type() == \"number\")')"
    longest = await db.fetchval(f"SELECT max(length(n::text)) FROM spool.jobs, {numbers} AS n")
    assert longest == MAX


async def test_a_result_labelled_json_is_bounded_too(stub: Stub, db: asyncpg.Connection) -> None:
    await stub.Enqueue(enqueue(b"{}"))
    (lj,) = (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    ack = qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token, result=b'{"total": 1e131000}')
    await expect_error(stub.Ack(ack), INVALID, "INVALID_ARGUMENT", "result")
    assert await db.fetchval("SELECT state::text FROM spool.jobs") == "running"


async def test_payload_contains_is_bounded_too(stub: Stub) -> None:
    search = qs.ListJobsRequest(filter=job_pb2.JobFilter(payload_contains='{"n": 1e131000}'))
    await expect_error(stub.ListJobs(search), INVALID, "INVALID_ARGUMENT", "filter.payload_contains")


NUMBERS = [
    "0", "-0", "0.0", "-0.0", "0e5", "0.000", "0E-3", "1", "-1", "10", "1e2", "1E+2", "1.0e2", "1.50",
    "1.50e-3", "100e-1", "0.05", "-0.05e1", "123.456", "9.99e-1", "1e-5", "-1.5e3", "12345678901234567890",
    "1.7976931348623157e308", "5e-324", "2.2250738585072014e-308", "0.1e1", "1e0", "-12.5E+10", "3.0E-2",
]  # fmt: skip


async def test_written_out_counts_what_postgresql_prints(db: asyncpg.Connection) -> None:
    printed = await db.fetch("SELECT n, length((n::jsonb)::text) AS chars FROM unnest($1::text[]) AS n", NUMBERS)
    assert {r["n"]: written_out(r["n"]) for r in printed} == {r["n"]: r["chars"] for r in printed}
