"""GetQueueActivity: jobs finished per minute per queue, for the Queues page's charts, and the
same figures in the pushed feed."""

from __future__ import annotations

import json

import asyncpg
import httpx

from tests.auth.conftest import make_key
from tests.console.conftest import Keys
from tests.console.jobs import call, kill
from tests.console.test_feed import client, events
from tests.http.conftest import connect_info

ACTIVITY = "/spool.v1.AdminService/GetQueueActivity"


async def succeed(base: str, key: str, queue: str, n: int) -> None:
    for _ in range(n):
        await call(base, key, "Enqueue", {"queue": queue, "payload": "e30="})
    leased = await call(base, key, "Lease", {"queues": [queue], "workerId": "w", "maxJobs": n})
    for held in leased["jobs"]:
        await call(base, key, "Ack", {"jobId": held["job"]["id"], "leaseToken": held["leaseToken"]})


async def activity(base: str, key: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}) as c:
        return await c.post(ACTIVITY, json=body)


async def test_finished_jobs_are_counted_in_their_minute_per_queue(
    base: str, keys: Keys, db: asyncpg.Connection
) -> None:
    await succeed(base, keys.admin, "payments", 3)
    for _ in range(2):
        await kill(base, keys.admin, "payments")
    await succeed(base, keys.admin, "emails", 1)
    await db.execute("UPDATE spool.jobs SET finished_at = finished_at - interval '10 minutes' WHERE queue = 'emails'")

    answer = (await activity(base, keys.read, {"minutes": 15})).json()

    by_queue = {a["queue"]: a for a in answer["queues"]}
    assert sorted(by_queue) == ["emails", "payments"]
    payments = by_queue["payments"]
    assert len(payments["succeeded"]) == len(payments["dead"]) == 15
    assert sum(map(int, payments["succeeded"])) == 3 and sum(map(int, payments["dead"])) == 2
    assert int(payments["succeeded"][-1]) + int(payments["succeeded"][-2]) == 3  # this minute (or the last)
    emails = [int(n) for n in by_queue["emails"]["succeeded"]]
    assert sum(emails) == 1 and emails.index(1) in (3, 4, 5)  # ten minutes before the current one
    assert answer["start"].endswith(":00Z")


async def test_a_key_for_some_queues_sees_only_their_activity(base: str, keys: Keys, db: asyncpg.Connection) -> None:
    await succeed(base, keys.admin, "payments", 1)
    await succeed(base, keys.admin, "emails", 1)
    narrow = await make_key(db, ["read"], ["pay*"])

    answer = (await activity(base, narrow, {})).json()

    assert [a["queue"] for a in answer["queues"]] == ["payments"]
    assert len(answer["queues"][0]["succeeded"]) == 60


async def test_minutes_out_of_range_are_refused(base: str, keys: Keys) -> None:
    for minutes in (-1, 61):
        answer = await activity(base, keys.read, {"minutes": minutes})
        assert answer.status_code == 400
        assert connect_info(answer.json()).metadata["field"] == "minutes"


async def test_the_feed_carries_the_activity(base: str, keys: Keys) -> None:
    await succeed(base, keys.admin, "payments", 2)

    async with client(base, keys.read) as c:
        name, data = await anext(aiter(events(c)))

    assert name == "message"
    (payments,) = data["activity"]["queues"]
    assert payments["queue"] == "payments" and sum(map(int, payments["succeeded"])) == 2
    assert json.dumps(data)  # plain JSON all through
