"""A row the API cannot convert as it is (headers that are not an object of strings, written before
the table's CHECK existed or with it dropped) is converted defensively: it never fails a Lease,
GetJob or ListJobs, nor strands the jobs claimed beside it."""

from __future__ import annotations

import asyncpg

from spool.v1 import queue_service_pb2 as qs
from tests.api.support import Stub
from tests.helpers import enqueue_request

BAD_HEADERS = {
    '{"retries": 3, "trace": "t", "nested": {"a": [1, true, null]}, "big": 12345678901234567890}': {
        "retries": "3",
        "trace": "t",
        "nested": '{"a":[1,true,null]}',
        "big": "12345678901234567890",
    },
    '["not", "an", "object"]': {},
    '"text"': {},
}


async def test_malformed_headers_fail_no_call(stub: Stub, db: asyncpg.Connection) -> None:
    await db.execute("ALTER TABLE spool.jobs DROP CONSTRAINT jobs_headers_strings")
    good = (await stub.Enqueue(enqueue_request("q", headers={"trace": "ok"}))).job.id
    bad = {}
    for raw, converted in BAD_HEADERS.items():
        job_id = await db.fetchval("SELECT spool.enqueue('q', '{}')")
        await db.execute("UPDATE spool.jobs SET headers = $1::text::jsonb WHERE id = $2", raw, job_id)
        bad[str(job_id)] = converted

    leased = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10))).jobs
    assert {lj.job.id: dict(lj.job.headers) for lj in leased} == {good: {"trace": "ok"}, **bad}

    listed = (await stub.ListJobs(qs.ListJobsRequest())).jobs
    assert {j.id: dict(j.headers) for j in listed} == {good: {"trace": "ok"}, **bad}
    for job_id, converted in bad.items():
        assert dict((await stub.GetJob(qs.GetJobRequest(job_id=job_id))).job.headers) == converted
    acks = [qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in leased]
    await stub.AckBatch(qs.AckBatchRequest(acks=acks))
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'succeeded'") == 4
