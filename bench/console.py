"""`python -m bench.console [--quick] [--rows N]`: what the web console costs the server and the
database at 1,000,000 jobs in 100 queues.

Loads a scratch database as bench.search does (100 queues instead of 10), starts spoold as a
subprocess with its HTTP port, and measures over the console's own HTTP calls:

1. the Jobs page's search (Connect ListJobs, page size 50) with an error-text filter, a state
   filter, both, and the Dead letters page's (500 newest DEAD): server time p50 / p95 over loopback;
2. the Queues page's ListQueues with 100 queues: p50 / p95;
3. the database's work per second (pg_stat_database deltas: transactions committed, rows read,
   seconds spent running statements) with 0, 1 and 20 consoles open on the Queues page (live over
   the pushed feed), against 20 browsers that would each poll ListQueues every 2 s instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpx

from bench.report import table
from bench.scratch import run, scratch_database, spoold
from bench.search import _LOAD as LOAD_10_QUEUES
from bench.search import load

CALLS = 30
WINDOW = 20.0  # seconds each transaction rate is measured over
FEED = 2.0  # SPOOL_CONSOLE_FEED_INTERVAL
LOAD = LOAD_10_QUEUES.replace("'queue-' || (g % 10)", "'queue-' || (g % 100)")
assert LOAD != LOAD_10_QUEUES

SEARCHES: list[tuple[str, dict[str, Any]]] = [
    ("Jobs: error text (rare)", {"filter": {"errorContains": "host-417.internal"}, "pageSize": 50}),
    ("Jobs: error text (common)", {"filter": {"errorContains": "timeouterror"}, "pageSize": 50}),
    ("Jobs: status dead", {"filter": {"statuses": ["STATUS_DEAD"]}, "pageSize": 50}),
    (
        "Jobs: dead + error text",
        {"filter": {"statuses": ["STATUS_DEAD"], "errorContains": "refused"}, "pageSize": 50},
    ),
    (
        "Jobs: queue + dead + error",
        {"filter": {"queues": ["queue-7"], "statuses": ["STATUS_DEAD"], "errorContains": "refused"}, "pageSize": 50},
    ),
    ("Dead letters (500 newest)", {"filter": {"statuses": ["STATUS_DEAD"]}, "pageSize": 500}),
]


def p(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def timed(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], calls: int = CALLS
) -> tuple[list[float], int]:
    """Latencies in ms (after one warm-up), and how many items the answer held."""
    first = await http.post(path, json=body)
    first.raise_for_status()
    found = len(next(iter(first.json().values()), []) or [])
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        (await http.post(path, json=body)).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, found


_COUNTERS = """
SELECT xact_commit, tup_returned + tup_fetched, active_time
FROM pg_stat_database WHERE datname = current_database()
"""


async def counters(conn: asyncpg.Connection) -> tuple[float, float, float]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(_COUNTERS)
    assert row is not None
    return float(row[0]), float(row[1]), float(row[2])


async def rate(conn: asyncpg.Connection) -> tuple[float, float, float]:
    """Per second in this database over WINDOW seconds: transactions committed, rows read, and
    seconds its backends spent running statements (pg_stat_database.active_time)."""
    before = await counters(conn)
    await asyncio.sleep(WINDOW)
    await asyncio.sleep(1.1)  # backends report their counters at most about once a second
    after = await counters(conn)
    xacts, rows, active_ms = ((a - b) / (WINDOW + 1.1) for a, b in zip(after, before, strict=True))
    return xacts, rows, active_ms / 1000


async def _consoles(base: str, n: int) -> AsyncIterator[None]:
    """n consoles open on the Queues page: each follows the pushed feed, as the page does."""

    async def one(ready: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=None) as c, c.stream("GET", "/console/feed/queues") as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    ready.set()

    events = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(one(e)) for e in events]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pollers(http: httpx.AsyncClient, n: int) -> AsyncIterator[None]:
    """n browsers that would poll ListQueues every FEED seconds each (what the feed avoids)."""

    async def one(offset: float) -> None:
        await asyncio.sleep(offset)
        while True:
            await http.post("/spool.v1.AdminService/ListQueues", json={})
            await asyncio.sleep(FEED)

    tasks = [asyncio.create_task(one(i * FEED / n)) for i in range(n)]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


consoles = contextlib.asynccontextmanager(_consoles)
pollers = contextlib.asynccontextmanager(_pollers)


async def measure_rates(base: str, http: httpx.AsyncClient, conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    rates: list[tuple[object, ...]] = [("no console open", *await rate(conn))]
    async with consoles(base, 1):
        rates.append(("1 console (pushed feed)", *await rate(conn)))
    async with consoles(base, 20):
        rates.append(("20 consoles (pushed feed)", *await rate(conn)))
    async with pollers(http, 20):
        rates.append(("20 browsers polling every 2 s (not the console)", *await rate(conn)))
    return rates


async def main_async(rows: int) -> None:
    async with scratch_database() as db_url:
        seconds = await load(db_url, rows, LOAD)
        print(f"loaded {rows:,} jobs in 100 queues in {seconds:.0f} s (incl. VACUUM ANALYZE)", flush=True)
        async with spoold(db_url, http=True, console_feed_interval=str(FEED)) as server:
            base = f"http://127.0.0.1:{server.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                results = []
                for name, body in SEARCHES:
                    samples, found = await timed(http, "/spool.v1.QueueService/ListJobs", body)
                    results.append((name, found, p(samples, 50), p(samples, 95), max(samples)))
                samples, found = await timed(http, "/spool.v1.AdminService/ListQueues", {}, calls=10)
                results.append(("Queues: ListQueues", found, p(samples, 50), p(samples, 95), max(samples)))
                table(
                    f"The console's calls at {rows:,} jobs, 100 queues (over loopback HTTP, Connect JSON)",
                    ("page and filter", "items", "p50 ms", "p95 ms", "max ms"),
                    results,
                )
                conn = await asyncpg.connect(db_url)
                try:
                    rates = await measure_rates(base, http, conn)
                finally:
                    await conn.close()
        table(
            f"The database's work per second (pg_stat_database deltas over {WINDOW:.0f} s windows)",
            ("open consoles", "xact/s", "rows read/s", "busy s/s"),
            rates,
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 jobs instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None, help="how many jobs to load")
    args = parser.parse_args(argv)
    run(main_async(args.rows or (100_000 if args.quick else 1_000_000)))


if __name__ == "__main__":
    main()
