"""Jobs for the console's tests, made through the API as producers and workers make them."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

Q = "/spool.v1.QueueService/"


async def call(base: str, key: str, method: str, body: dict[str, Any], service: str = Q) -> dict[str, Any]:
    """A Connect call (QueueService unless `service` says otherwise) with the key; its answer."""
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=10) as c:
        answer = await c.post(service + method, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def kill(
    base: str,
    key: str,
    queue: str = "payments",
    *,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    error: str = "card declined",
) -> str:
    """A job enqueued, leased and nacked as not retryable: DEAD, with `error` as its last error."""
    raw = json.dumps(payload if payload is not None else {"order": 5512}).encode()
    request = {"queue": queue, "payload": base64.b64encode(raw).decode(), "headers": headers or {}}
    job_id = str((await call(base, key, "Enqueue", request))["job"]["id"])
    leased = await call(base, key, "Lease", {"queues": [queue], "workerId": "test-worker", "maxJobs": 1})
    (held,) = leased["jobs"]
    assert held["job"]["id"] == job_id
    nack = {
        "jobId": job_id,
        "leaseToken": held["leaseToken"],
        "retryable": False,
        "error": {"type": "PaymentError", "message": error, "details": "Traceback (most recent call last):\n  ..."},
    }
    await call(base, key, "Nack", nack)
    return job_id
