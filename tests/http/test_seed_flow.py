"""The async-API flow with the real curl binary against a live spoold: POST a job, read 202 and its
id, have a worker finish it, GET it SUCCEEDED with its result; the same with an idempotency key
twice; and the events stream of a job, which shows every change and ends."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import spool
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.http.conftest import CURL, curl, needs_curl

pytestmark = needs_curl
JSON = ("-H", "Content-Type: application/json")


async def finish(app: App, queue: str, result: dict[str, object]) -> str:
    """A worker's part over gRPC: lease one job of the queue and ack it with the result."""
    async with spool.AsyncClient(f"127.0.0.1:{app.port}") as client:
        (leased,) = await client.lease([queue], max_jobs=1, wait=timedelta(seconds=5))
        ack = qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, result=json.dumps(result).encode())
        await client.stub.Ack(ack)
        return str(leased.job.id)


async def test_post_then_poll_until_succeeded(app: App, base: str) -> None:
    posted = await curl(
        *JSON, "-d", '{"payload": {"to": "ada@example.com"}, "maxAttempts": 5}', f"{base}/v1/queues/emails/jobs"
    )
    assert posted.status == 202
    body = posted.json()
    assert body == {"jobId": body["jobId"], "status": "PENDING", "deduplicated": False}
    assert posted.headers["location"] == f"/v1/jobs/{body['jobId']}"

    pending = await curl(base + posted.headers["location"])
    assert pending.status == 200
    assert pending.json()["status"] == "PENDING" and pending.json()["payload"] == {"to": "ada@example.com"}

    assert await finish(app, "emails", {"sent": True}) == body["jobId"]
    done = await curl(f"{base}/v1/jobs/{body['jobId']}")
    job = done.json()
    assert (done.status, job["status"], job["result"], job["maxAttempts"]) == (200, "SUCCEEDED", {"sent": True}, 5)
    assert job["attempts"][0]["outcome"] == "OUTCOME_SUCCEEDED" and job["finishedAt"]


async def test_the_same_idempotency_key_twice(app: App, base: str) -> None:
    request = (*JSON, "-d", '{"payload": {"n": 1}, "idempotencyKey": "order-7"}', f"{base}/v1/queues/orders/jobs")
    first, second = await curl(*request), await curl(*request)
    assert (first.status, second.status) == (202, 200)
    assert second.json() == {"jobId": first.json()["jobId"], "status": "PENDING", "deduplicated": True}
    assert second.headers["location"] == first.headers["location"]


async def test_the_events_stream_shows_every_change_and_ends(app: App, base: str) -> None:
    posted = await curl(*JSON, "-d", '{"payload": {}}', f"{base}/v1/queues/watched/jobs")
    job_id = posted.json()["jobId"]
    assert CURL is not None
    follow = await asyncio.create_subprocess_exec(
        CURL, "-sS", "-N", f"{base}/v1/jobs/{job_id}/events", stdout=asyncio.subprocess.PIPE
    )
    assert follow.stdout is not None
    first = await asyncio.wait_for(follow.stdout.readuntil(b"\r\n\r\n"), 30)
    assert b'"status": "PENDING"' in first
    await finish(app, "watched", {"ok": 1})
    rest, _ = await asyncio.wait_for(follow.communicate(), 30)  # curl exits: the server ended the stream
    events = [e for e in (first + rest).decode().split("\r\n\r\n") if e.strip() and not e.startswith(":")]
    data = [
        json.loads(line.removeprefix("data: ")) for e in events for line in e.split("\r\n") if line.startswith("data: ")
    ]
    assert [d["status"] for d in data] == ["PENDING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    assert data[2]["result"] == {"ok": 1}
    assert events[-1].startswith("event: end")
    assert follow.returncode == 0
