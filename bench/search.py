"""`python -m bench.search [--quick] [--rows N]`: ListJobs latency over gRPC at 1,000,000 jobs.

Loads a scratch database with INSERT ... SELECT generate_series (about 5% of the jobs carry an
error), VACUUM ANALYZE, starts spoold as a subprocess, and times ListJobs calls (p50 / p95 over
50 calls each) for searches an operator makes: error text that is rare, common or absent, a
queue's dead jobs, a JSON payload containment, and a deep page.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import asyncpg

from bench.report import table, target
from bench.scratch import run, scratch_database, spoold
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

CALLS = 50
CHUNK = 100_000

# Job g of n: 10 queues; every 20th job failed (DEAD, or PENDING awaiting a retry), with one of a
# few error types and a message naming one of 1,000 hosts; the rest mostly SUCCEEDED.
_LOAD = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration,
    error_type, error_message, created_at, updated_at, finished_at)
SELECT 'queue-' || (g % 10), s.state,
    jsonb_build_object('order_id', g, 'customer', g % 50000,
        'kind', CASE WHEN g % 3 = 0 THEN 'receipt' ELSE 'invoice' END),
    'application/json', 3, 'exponential', interval '1 second', interval '5 minutes', 2, true,
    interval '30 seconds',
    CASE WHEN failed THEN (ARRAY['TimeoutError', 'ConnectionRefused', 'KeyError', 'SMTPError'])[1 + (g / 20) % 4] END,
    CASE WHEN failed THEN 'request to host-' || ((g / 20) % 1000) || '.internal failed after ' || (g % 60) || ' s' END,
    t.created, t.created,
    CASE WHEN s.state IN ('succeeded', 'dead', 'cancelled') THEN t.created + interval '2 seconds' END
FROM generate_series($1::bigint, $2::bigint) AS g
CROSS JOIN LATERAL (SELECT g % 20 = 7 AS failed) AS f
CROSS JOIN LATERAL (SELECT now() - ($3::bigint - g) * interval '600 milliseconds' AS created) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN failed AND g % 3 = 0 THEN 'pending'
    WHEN failed THEN 'dead'
    WHEN g % 50 = 1 THEN 'cancelled'
    WHEN g % 10 = 2 THEN 'pending'
    ELSE 'succeeded' END::spool.job_state AS state) AS s
"""


async def load(db_url: str, rows: int, sql: str = _LOAD) -> float:
    """Loads `rows` jobs with `sql` (by default this history: 10 queues), in chunks."""
    conn = await asyncpg.connect(db_url)
    try:
        started = time.perf_counter()
        for first in range(1, rows + 1, CHUNK):
            await conn.execute(sql, first, min(first + CHUNK - 1, rows), rows)
        await conn.execute("VACUUM ANALYZE spool.jobs")
        return time.perf_counter() - started
    finally:
        await conn.close()


def searches(rows: int) -> list[tuple[str, qs.ListJobsRequest]]:
    f = job_pb2.JobFilter
    dead = job_pb2.Job.STATE_DEAD
    return [
        ("error_contains rare (1 host)", qs.ListJobsRequest(filter=f(error_contains="HOST-417.internal"))),
        ("error_contains common", qs.ListJobsRequest(filter=f(error_contains="timeouterror"))),
        ("error_contains absent", qs.ListJobsRequest(filter=f(error_contains="disk quota exceeded"))),
        (
            "error + queue + DEAD",
            qs.ListJobsRequest(filter=f(error_contains="refused", queues=["queue-7"], states=[dead])),
        ),
        ("queue + DEAD, no text", qs.ListJobsRequest(filter=f(queues=["queue-7"], states=[dead]))),
        ("payload_contains (no index)", qs.ListJobsRequest(filter=f(payload_contains=f'{{"order_id": {rows // 2}}}'))),
        ("no filter, page 1000", qs.ListJobsRequest(page_size=1000)),
    ]


async def time_calls(stub: object, request: qs.ListJobsRequest) -> tuple[list[float], int]:
    """Latencies in ms of CALLS calls (after one warm-up), and how many jobs a call returned."""
    call = stub.ListJobs  # type: ignore[attr-defined]
    found = len((await call(request)).jobs)
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter()
        await call(request)
        samples.append((time.perf_counter() - started) * 1000)
    return samples, found


def p(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def main_async(rows: int) -> None:
    async with scratch_database() as db_url:
        seconds = await load(db_url, rows)
        print(f"loaded {rows:,} jobs in {seconds:.0f} s (incl. VACUUM ANALYZE)", flush=True)
        async with spoold(db_url) as server:
            stub = server.stub()
            results = []
            for name, request in searches(rows):
                samples, found = await time_calls(stub, request)
                results.append((name, found, p(samples, 50), p(samples, 95), max(samples)))
        table(
            f"ListJobs over gRPC at {rows:,} jobs ({CALLS} calls each, page_size 50 unless noted)",
            ("search", "jobs", "p50 ms", "p95 ms", "max ms"),
            results,
        )
        text_p95 = max(r[3] for r in results if r[0].startswith("error_contains"))
        target(f"ListJobs error_contains p95 at {rows:,} jobs", f"{text_p95:.1f} ms", "< 100 ms", text_p95 < 100)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 jobs instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None, help="how many jobs to load")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    run(main_async(rows))


if __name__ == "__main__":
    main()
