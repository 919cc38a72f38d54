"""A JSON payload comes back as PostgreSQL's jsonb prints it: docs/decisions.md ("Payloads") shows
an example sent and received, and this test sends it and checks what Lease and GetJob return. A
payload with another content type comes back byte for byte."""

from __future__ import annotations

from pathlib import Path

from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub

DECISIONS = Path(__file__).parents[2] / "docs" / "decisions.md"


def documented_example() -> tuple[bytes, bytes]:
    lines = DECISIONS.read_text().splitlines()
    sent = next(line for line in lines if line.startswith("sent:"))
    received = next(line for line in lines if line.startswith("received:"))
    return sent.removeprefix("sent:").strip().encode(), received.removeprefix("received:").strip().encode()


async def test_a_json_payload_comes_back_as_the_docs_say(stub: Stub) -> None:
    sent, received = documented_example()
    job = (await stub.Enqueue(qs.EnqueueRequest(queue="q", payload=sent))).job
    assert job.payload == received
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    assert leased.job.payload == received
    assert (await stub.GetJob(qs.GetJobRequest(job_id=job.id))).job.payload == received


async def test_other_content_types_come_back_byte_for_byte(stub: Stub) -> None:
    sent, _ = documented_example()
    job = (await stub.Enqueue(qs.EnqueueRequest(queue="q", payload=sent, content_type="application/octet-stream"))).job
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=["q"]))).jobs
    assert job.payload == leased.job.payload == sent
