"""Per-attempt logs: sent with Heartbeat, Ack and Nack, bounded per attempt with a marker, cleaned
of what cannot be stored, fenced like the calls that carry them, shown by GetJob only on request."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import spool
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings
from tests.api.support import Stub, expect_lease_lost, seconds
from tests.client.conftest import serving
from tests.conftest import wait_until
from tests.helpers import enqueue_request
from tests.http.conftest import curl, http_settings, needs_curl

BOUND = 64 * 1024


@pytest.fixture
def settings() -> Settings:
    return http_settings()


async def _leased(stub: Stub, queue: str = "logs", max_attempts: int = 1) -> qs.LeasedJob:
    await stub.Enqueue(enqueue_request(queue, {"n": 1}, max_attempts=max_attempts))
    (leased,) = (await stub.Lease(qs.LeaseRequest(queues=[queue]))).jobs
    return leased


async def _attempts(stub: Stub, job_id: str, include_logs: bool = True) -> list[job_pb2.Attempt]:
    return list((await stub.GetJob(qs.GetJobRequest(job_id=job_id, include_logs=include_logs))).job.attempts)


async def test_heartbeats_and_ack_append_to_the_attempt_and_getjob_shows_them_on_request(stub: Stub) -> None:
    leased = await _leased(stub)
    held = {"job_id": leased.job.id, "lease_token": leased.lease_token}
    await stub.Heartbeat(qs.HeartbeatRequest(**held, logs="one\n"))
    batch = await stub.HeartbeatBatch(qs.HeartbeatBatchRequest(heartbeats=[qs.HeartbeatRequest(**held, logs="two\n")]))
    assert not batch.results[0].HasField("error")
    assert [a.logs for a in await _attempts(stub, leased.job.id)] == ["one\ntwo\n"]
    await stub.Ack(qs.AckRequest(**held, logs="three\n"))
    (attempt,) = await _attempts(stub, leased.job.id)
    assert attempt.logs == "one\ntwo\nthree\n" and attempt.logs_dropped == 0
    (plain,) = await _attempts(stub, leased.job.id, include_logs=False)
    assert plain.logs == "" and plain.outcome == job_pb2.Attempt.OUTCOME_SUCCEEDED


async def test_each_attempt_keeps_its_own_lines_through_a_nack(stub: Stub) -> None:
    leased = await _leased(stub, max_attempts=2)
    held = {"job_id": leased.job.id, "lease_token": leased.lease_token}
    await stub.Nack(qs.NackRequest(**held, error=job_pb2.JobError(message="boom"), logs="first try\n"))
    (again,) = (await stub.Lease(qs.LeaseRequest(queues=["logs"], wait=seconds(10)))).jobs
    await stub.AckBatch(
        qs.AckBatchRequest(acks=[qs.AckRequest(job_id=again.job.id, lease_token=again.lease_token, logs="second\n")])
    )
    assert [a.logs for a in await _attempts(stub, leased.job.id)] == ["first try\n", "second\n"]


async def test_a_flood_keeps_the_last_64_ki_characters_with_a_marker(stub: Stub) -> None:
    leased = await _leased(stub)
    held = {"job_id": leased.job.id, "lease_token": leased.lease_token}
    chunks = [f"{i}" * 40_000 + "\n" for i in range(3)]  # 120,003 characters in all
    for chunk in chunks:
        await stub.Heartbeat(qs.HeartbeatRequest(**held, logs=chunk))
    await stub.Ack(qs.AckRequest(**held, logs="the end\n"))
    (attempt,) = await _attempts(stub, leased.job.id)
    total = sum(map(len, chunks)) + len("the end\n")
    assert attempt.logs_dropped == total - BOUND
    marker, kept = attempt.logs.split("\n", 1)
    assert marker == f"[spool: {total - BOUND} earlier characters of this log were dropped]"
    assert len(kept) == BOUND and kept.endswith("2\nthe end\n")


async def test_a_single_10_mb_line_is_bounded_and_the_ack_stands(stub: Stub) -> None:
    leased = await _leased(stub)
    line = "x" * (10 * 1024 * 1024) + "!\n"
    resp = await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, logs=line))
    assert resp.job.state == job_pb2.Job.STATE_SUCCEEDED
    (attempt,) = await _attempts(stub, leased.job.id)
    assert attempt.logs_dropped == len(line) - BOUND and attempt.logs.endswith("x!\n")


async def test_nul_is_replaced_not_refused(stub: Stub) -> None:
    leased = await _leased(stub)
    await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, logs="a\x00b\n"))
    assert [a.logs for a in await _attempts(stub, leased.job.id)] == ["a\ufffdb\n"]


async def test_a_stale_lease_lines_are_not_stored(stub: Stub) -> None:
    leased = await _leased(stub)
    stale = str(int(leased.lease_token) + 1000)
    await expect_lease_lost(stub.Heartbeat(qs.HeartbeatRequest(job_id=leased.job.id, lease_token=stale, logs="x\n")))
    await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token))
    await expect_lease_lost(stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, logs="y\n")))
    assert [a.logs for a in await _attempts(stub, leased.job.id)] == [""]


@needs_curl
async def test_connect_json_with_an_unpaired_surrogate_is_refused_naming_logs(app: App, stub: Stub) -> None:
    # JSON can spell text that is not Unicode; the decoder refuses it (the Workers clean their lines).
    leased = await _leased(stub)
    body = json.dumps({"jobId": leased.job.id, "leaseToken": leased.lease_token, "logs": "\ud800 ok\n"})
    url = f"http://127.0.0.1:{app.http_port}/spool.v1.QueueService/Ack"
    answer = await curl("-H", "Content-Type: application/json", "-d", body, url)
    assert answer.status == 400 and answer.json()["code"] == "invalid_argument"
    assert "logs" in answer.json()["message"]
    (attempt,) = await _attempts(stub, leased.job.id)
    assert attempt.outcome == job_pb2.Attempt.OUTCOME_UNSPECIFIED and attempt.logs == ""


async def test_a_handler_flooding_and_writing_huge_lines_still_succeeds(app: App, client: spool.AsyncClient) -> None:
    job = await client.enqueue("flood", {})
    worker = spool.Worker(client, poll_wait=timedelta(seconds=1))

    @worker.handler("flood")
    def handle(active: spool.ActiveJob) -> str:
        active.log("y" * (10 * 1024 * 1024))
        for i in range(100_000):
            active.log("line %d", i)
        active.log("nul \x00 and \udcff survive")
        return "done"

    async def succeeded() -> bool:
        return (await client.get(job.id)).state == job_pb2.Job.STATE_SUCCEEDED

    async with serving(worker):
        await wait_until(succeeded, within=60)
    (attempt,) = (await client.get(job.id, include_logs=True)).attempts
    assert len(attempt.logs) <= BOUND + 200
    assert "log lines (" in attempt.logs and "dropped here]" in attempt.logs
    assert attempt.logs.endswith("INFO nul \ufffd and \ufffd survive\n")
    assert "INFO line 99999\n" in attempt.logs
