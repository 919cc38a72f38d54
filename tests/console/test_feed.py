"""The queue stats pushed to open consoles: one query per interval for all of them, filtered per
key, and a stream that ends when its key is revoked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from spoold.app import App
from spoold.store.keys import KeyStore
from tests.auth.conftest import key_id, make_key
from tests.conftest import wait_until
from tests.console.conftest import Keys
from tests.console.jobs import kill

FEED = "/console/feed/queues"


async def events(client: httpx.AsyncClient) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) for each server-sent event of the feed."""
    async with client.stream("GET", FEED) as answer:
        assert answer.status_code == 200, await answer.aread()
        name, data = "message", ""
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                yield name, json.loads(data)
                name, data = "message", ""


def client(base: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)


async def test_twenty_consoles_cost_one_query_per_interval(app: App, base: str, keys: Keys) -> None:
    await kill(base, keys.admin, "emails")
    assert app.feed is not None
    received = [0] * 20

    async def console(i: int) -> None:
        async with client(base, keys.read) as c:
            async for name, data in events(c):
                assert name == "message" and [q["name"] for q in data["queues"]] == ["emails"]
                received[i] += 1

    tasks = [asyncio.create_task(console(i)) for i in range(20)]
    try:
        await wait_until(lambda: min(received) >= 1, within=20)
        first = app.feed.published
        seen = list(received)
        await wait_until(lambda: all(r >= s + 3 for r, s in zip(received, seen, strict=True)), within=20)
        # Every console got 3+ snapshots more; the stats were read about as often, not 20x.
        assert app.feed.published - first <= min(r - s for r, s in zip(received, seen, strict=True)) + 2
        assert app.feed.listening == 20
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await wait_until(lambda: app.feed is not None and app.feed.listening == 0)


async def test_no_console_open_no_query(app: App) -> None:
    assert app.feed is not None and app.feed.listening == 0
    before = app.feed.published

    await app.feed.run_once()

    assert app.feed.published == before


async def test_each_console_sees_only_its_keys_queues(base: str, keys: Keys, db: asyncpg.Connection) -> None:
    await kill(base, keys.admin, "emails")
    await kill(base, keys.admin, "payments")
    narrow = await make_key(db, ["read"], ["pay*"])

    async with client(base, narrow) as c:
        name, data = await anext(aiter(events(c)))

    assert name == "message"
    assert [q["name"] for q in data["queues"]] == ["payments"]
    assert data["queues"][0]["stats"]["dead"] == "1"


async def test_a_revoked_key_ends_the_stream_with_an_error(base: str, db: asyncpg.Connection) -> None:
    key = await make_key(db, ["read"], name="soon revoked")

    async with client(base, key) as c:
        stream = aiter(events(c))
        assert (await anext(stream))[0] == "message"
        await KeyStore(db).revoke(key_id(key))
        while True:
            name, data = await asyncio.wait_for(anext(stream), 20)
            if name == "error":
                break

    assert data["error"]["status"] == "UNAUTHENTICATED"
    assert data["error"]["details"][0]["reason"] == "API_KEY_REVOKED"


async def test_the_feed_refuses_a_caller_without_a_key(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as c:
        answer = await c.get(FEED)

    assert answer.status_code == 401


async def test_the_feed_reads_every_page_of_queues(base: str, keys: Keys, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO spool.queues (name) SELECT 'q-' || lpad(g::text, 4, '0') FROM generate_series(1, 1005) g"
    )

    async with client(base, keys.read) as c:
        name, data = await anext(aiter(events(c)))

    assert name == "message"
    names = [q["name"] for q in data["queues"]]
    assert len(names) == 1005 and names[0] == "q-0001" and names[-1] == "q-1005"
