"""`python -m bench.listing [--quick] [--rows N]`: what the listing indexes of migration 0009 buy
(ListJobs by state, and by queue and state, newest first) and what each costs on the hot path.

1. Listing. A history of N jobs as a deployment has it: mostly SUCCEEDED, the PENDING backlog at
   the newest end, a few RUNNING, DEAD and CANCELLED a sliver of it in the older half, and one
   queue that once failed a quarter of its jobs. ListJobs over gRPC (spoold as a subprocess) for
   each state, across all queues and in one queue; 30 calls each, so that spoold's prepared
   statements reach their generic plans. Measured with the listing indexes dropped, then with them, in the same run.
2. Cost. Set-based SQL, so that index upkeep is not hidden behind RPC overhead (as in
   docs/storage.md): enqueue N jobs, claim them all, ack 95 % and fail 5 % to DEAD; the database
   backend's CPU per job for each step with none of the listing indexes, with each, and with two
   PENDING indexes that are not shipped, in alternating rounds (least of ROUNDS); and the bytes
   per job the indexes took.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import asyncpg

from bench.cpu import proc_cpu
from bench.report import ratio, table, target
from bench.scratch import run, scratch_database, settle, spoold
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

CHUNK = 100_000
ROUNDS = 3
SHIPPED = ("jobs_dead_idx", "jobs_cancelled_idx")
# Considered and not shipped: their cost on Enqueue is what this benchmark shows.
CANDIDATES = {
    "pending (id)": "CREATE INDEX bench_pending_idx ON spool.jobs (id) WHERE state = 'pending'",
    "pending (queue, id)": "CREATE INDEX bench_pending_queue_idx ON spool.jobs (queue, id) WHERE state = 'pending'",
}

# Job g of n: 10 queues. The newest 2 % PENDING, every 500th RUNNING; in the older half, in queues
# 0 to 4 only, one job in 400 DEAD and one in 1,000 CANCELLED, and in queue 9 one in 4 DEAD (an
# integration that broke for a while); the rest SUCCEEDED.
_HISTORY = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration, error_type,
    error_message, lease_token, started_at, lease_expires_at, created_at, updated_at, finished_at)
SELECT 'queue-' || (g % 10), s.state, jsonb_build_object('n', g), 'application/json', 1, 'exponential',
    interval '1 second', interval '5 minutes', 2, true, interval '30 seconds',
    CASE WHEN s.state = 'dead' THEN 'Boom' END, CASE WHEN s.state = 'dead' THEN 'it broke' END,
    CASE WHEN s.state = 'running' THEN g END, CASE WHEN s.state = 'running' THEN now() END,
    CASE WHEN s.state = 'running' THEN now() + interval '1 hour' END, now(), now(),
    CASE WHEN s.state IN ('succeeded', 'dead', 'cancelled') THEN now() END
FROM generate_series($1::bigint, $2::bigint) AS g
CROSS JOIN LATERAL (SELECT CASE
    WHEN g > $3::bigint * 0.98 THEN 'pending'
    WHEN g % 500 = 0 THEN 'running'
    WHEN g < $3::bigint / 2 AND (g / 10) % 200 = 7 AND g % 10 < 5 THEN 'dead'
    WHEN g < $3::bigint / 2 AND (g / 10) % 4 = 1 AND g % 10 = 9 THEN 'dead'
    WHEN g < $3::bigint / 2 AND (g / 10) % 500 = 11 AND g % 10 < 5 THEN 'cancelled'
    ELSE 'succeeded' END::spool.job_state AS state) AS s
"""


async def load_history(conn: asyncpg.Connection, rows: int) -> None:
    for first in range(1, rows + 1, CHUNK):
        await conn.execute(_HISTORY, first, min(first + CHUNK - 1, rows), rows)
    await settle(conn)


async def index_definitions(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, str]:
    found = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1)", list(names))
    return {r["indexname"]: r["indexdef"] for r in found}


async def drop(conn: asyncpg.Connection, names: Sequence[str]) -> None:
    for name in names:
        await conn.execute(f"DROP INDEX IF EXISTS spool.{name}")


def listings() -> list[tuple[str, qs.ListJobsRequest]]:
    f, state = job_pb2.JobFilter, job_pb2.Job
    cases = []
    for name in ("PENDING", "RUNNING", "SUCCEEDED", "DEAD", "CANCELLED"):
        value = state.State.Value(f"STATE_{name}")
        cases.append((name, qs.ListJobsRequest(filter=f(states=[value]))))
        cases.append((f"queue-3 + {name}", qs.ListJobsRequest(filter=f(states=[value], queues=["queue-3"]))))
    dead = [state.STATE_DEAD]
    # Queues 5 to 8 have no DEAD job: the search that used to walk the whole table.
    cases.append(("queue-7 + DEAD (none)", qs.ListJobsRequest(filter=f(states=dead, queues=["queue-7"]))))
    cases.append(("queue-9 + DEAD (many)", qs.ListJobsRequest(filter=f(states=dead, queues=["queue-9"]))))
    return cases


async def time_listings(stub: object, calls: int) -> dict[str, tuple[int, float, float]]:
    """Per case: jobs on the first page, p50 and p95 in ms over `calls` calls after one warm-up."""
    out = {}
    for name, request in listings():
        found = len((await stub.ListJobs(request)).jobs)  # type: ignore[attr-defined]
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await stub.ListJobs(request)  # type: ignore[attr-defined]
            samples.append((time.perf_counter() - started) * 1000)
        q = statistics.quantiles(samples, n=20, method="inclusive")
        out[name] = (found, statistics.median(samples), q[18])
    return out


async def measure_listing(rows: int, calls: int) -> None:
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            await load_history(conn, rows)
            print(f"loaded {rows:,} jobs in {time.perf_counter() - started:.0f} s", flush=True)
            shipped = await index_definitions(conn, SHIPPED)
            await drop(conn, SHIPPED)
            async with spoold(url) as server:
                without = await time_listings(server.stub(), calls)
            for sql in shipped.values():
                await conn.execute(sql)
            await settle(conn)
            async with spoold(url) as server:
                with_ = await time_listings(server.stub(), calls)
        finally:
            await conn.close()
    rows_out = [(name, found, p50, p95, with_[name][1], with_[name][2]) for name, (found, p50, p95) in without.items()]
    table(
        f"ListJobs (page of 50) at {rows:,} jobs, ms: without / with the listing indexes",
        ("listing", "jobs", "p50 without", "p95 without", "p50 with", "p95 with"),
        rows_out,
    )
    worst = max(v[2] for v in with_.values())
    target("ListJobs by state or queue + state, p95 (worst listing)", f"{worst:.1f} ms", "< 50 ms", worst < 50)


# The hot path's writes, set-based: what each step costs in index upkeep.
_ENQUEUE = """
INSERT INTO spool.jobs (queue, payload_json, content_type, max_attempts, backoff_kind, backoff_initial,
    backoff_max, backoff_multiplier, backoff_jitter, lease_duration)
SELECT 'queue-' || (g % 10), jsonb_build_object('n', g), 'application/json', 1, 'exponential',
    interval '1 second', interval '5 minutes', 2, true, interval '30 seconds'
FROM generate_series(1, $1::integer) AS g
"""
_CLAIM = """
UPDATE spool.jobs SET state = 'running', attempt = 1, lease_token = nextval('spool.lease_token_seq'),
    worker_id = 'w', started_at = now(), lease_expires_at = now() + interval '30 seconds', updated_at = now()
WHERE state = 'pending'
"""
_ACK = """
UPDATE spool.jobs SET state = 'succeeded', lease_expires_at = NULL, finished_at = now(), updated_at = now()
WHERE state = 'running' AND id % 20 <> 0
"""
_FAIL = """
UPDATE spool.jobs SET state = 'dead', error_type = 'Boom', error_message = 'it broke', lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE state = 'running'
"""


async def one_round(conn: asyncpg.Connection, rows: int) -> list[float]:
    """CPU microseconds per job that the database backend spent on enqueue, claim, ack (95 %) and
    fail (5 %), on an empty table. Backend CPU rather than wall time: on a shared machine it moves
    far less with what else is running, and it is what index upkeep costs."""
    await conn.execute("TRUNCATE spool.attempts, spool.jobs")
    await settle(conn)
    backend = conn.get_server_pid()
    costs = []
    for sql, share in ((_ENQUEUE, 1.0), (_CLAIM, 1.0), (_ACK, 0.95), (_FAIL, 0.05)):
        before = proc_cpu(backend)
        await conn.execute(sql, rows) if sql is _ENQUEUE else await conn.execute(sql)
        after = proc_cpu(backend)
        costs.append(float("nan") if before is None or after is None else (after - before) * 1e6 / (rows * share))
    return costs


async def index_bytes(conn: asyncpg.Connection, names: Sequence[str]) -> int:
    found: int = await conn.fetchval(
        "SELECT coalesce(sum(pg_relation_size(('spool.' || n)::regclass)), 0)::bigint FROM unnest($1::text[]) AS n "
        "WHERE to_regclass('spool.' || n) IS NOT NULL",
        list(names),
    )
    return found


async def measure_cost(rows: int) -> None:
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            shipped = await index_definitions(conn, SHIPPED)
            await drop(conn, SHIPPED)
            variants = {
                "0009 without listing indexes": {},
                **{f"+ {name}": {name: sql} for name, sql in shipped.items()},
                "+ both shipped": shipped,
                **{f"+ {name} (not shipped)": {sql.split()[2]: sql} for name, sql in CANDIDATES.items()},
            }
            best: dict[str, list[float]] = {}
            sizes: dict[str, int] = {}
            for _ in range(ROUNDS):
                for name, creates in variants.items():
                    for sql in creates.values():
                        await conn.execute(sql)
                    costs = await one_round(conn, rows)
                    best[name] = [min(a, b) for a, b in zip(best.get(name, costs), costs, strict=True)]
                    sizes[name] = await index_bytes(conn, list(creates))
                    await drop(conn, list(creates))
        finally:
            await conn.close()
    base = best["0009 without listing indexes"]
    table(
        f"Index upkeep, set-based over {rows:,} jobs: database CPU us per job (least of {ROUNDS} rounds), "
        "% of no listing index, and the listed indexes' bytes per job after the cycle",
        ("indexes", "enqueue", "%", "claim", "%", "ack 95%", "%", "fail 5%", "%", "bytes/job"),
        [
            (name, *[x for c, b in zip(costs, base, strict=True) for x in (c, ratio(c, b))], sizes[name] / rows)
            for name, costs in best.items()
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.listing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 jobs and 10 calls per listing")
    parser.add_argument("--rows", type=int, default=None, help="jobs in the history (default 1,000,000)")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    run(measure_listing(rows, 10 if args.quick else 30))
    run(measure_cost(50_000 if args.quick else 200_000))


if __name__ == "__main__":
    main()
