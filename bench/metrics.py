"""What metrics cost and what a scrape costs.

1. The batched drain (EnqueueBatch-filled, Lease 100 + AckBatch with next, 8 clients), and the drain
   with one job per RPC (Lease 1 + Ack with next), through three spoold processes on one scratch
   database: "off" (SPOOL_METRICS=0, no tracing), "metrics" (metrics on, scraped every second) and
   "tracing" (SPOOL_METRICS=0; OTEL_EXPORTER_OTLP_ENDPOINT set, OTEL_TRACES_SAMPLER=always_on: a
   SERVER span for every RPC, exported with OTLP/HTTP through the SDK's BatchSpanProcessor to
   bench/otlp_sink.py, a receiver in its own process that parses and counts what it gets), in
   rotating order each round: the process-side cost of counting (goal <= 3 %) and of tracing.
   The load generator's raw stubs send no traceparent: each span is a root, sampled by always_on.
2. The same drain on the SQL ceiling with migration 0018's count triggers enabled and disabled, in
   alternating rounds: what keeping the queue counts costs the database; then the same with
   TailJobs' triggers (migration 0019) with nobody tailing.
3. At 1,000,000 jobs over 100 queues (--quick: 100,000): a scrape of /metrics, ListQueues over
   gRPC, and the scan that ListQueues ran before migration 0018 (goal: a scrape <= 50 ms).

    python -m bench.metrics [--quick] [--only drain|triggers|scrape]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import httpx

from bench import ceiling
from bench.ceiling import Case, Params
from bench.cpu import Meter
from bench.report import table, target
from bench.scratch import Server, free_port, run, scratch_database, settle, spoold
from bench.throughput import grpc_drivers, sum_results
from bench.workloads import Result
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc

DRAIN = Case("drain", 100, 8, chained=True)
# Tracing costs per RPC: the drain with one job per RPC (Ack with next) shows it at its largest.
CASES = (DRAIN, Case("drain", 1, 8, chained=True))
MODES = ("off", "metrics", "tracing")
ROUNDS = 6  # a multiple of 3 (spoold's modes rotate) and of 2 (the triggers alternate)
COUNT_TRIGGERS = ("jobs_count_inserted", "jobs_count_updated", "jobs_count_deleted")
# TailJobs' (migration 0019): with no tail open they look at spool.tailers and return.
TAIL_TRIGGERS = ("jobs_record_events_update", "jobs_record_events_insert")
# ListQueues' counting before migration 0018: a pass over spool.jobs.
SCAN = """
SELECT queue,
    count(*) FILTER (WHERE state = 'pending' AND attempt = 0 AND run_at <= now()) AS ready,
    count(*) FILTER (WHERE state = 'pending' AND attempt = 0 AND run_at > now()) AS scheduled,
    count(*) FILTER (WHERE state = 'pending' AND attempt > 0) AS retrying,
    count(*) FILTER (WHERE state = 'running') AS running,
    count(*) FILTER (WHERE state = 'dead') AS dead,
    count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
    now() - min(run_at) FILTER (WHERE state = 'pending' AND attempt = 0 AND run_at <= now()) AS lag,
    count(*) FILTER (WHERE finished_at > now() - interval '1 minute') AS finished_last_minute
FROM spool.jobs GROUP BY queue
"""
# A history: 80 % succeeded over the last 6 hours, 3 % dead, 1 % cancelled, 1 % running, 1 %
# retrying, 10 % ready, 4 % scheduled at random seconds over the next day; 100 queues.
_HISTORY = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, run_at, attempt, max_attempts,
    backoff_kind, backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration,
    finished_at, started_at, lease_token, lease_expires_at)
SELECT 'q' || (g % 100), s.state::spool.job_state, '{}', 'application/json',
    CASE WHEN s.k = 'scheduled' THEN now() + random() * interval '1 day'
         ELSE now() - random() * interval '6 hours' END,
    CASE WHEN s.k = 'retrying' OR s.state <> 'pending' THEN 1 ELSE 0 END, 3,
    'exponential', interval '1 second', interval '5 minutes', 2, true, interval '30 seconds',
    CASE WHEN s.state IN ('succeeded', 'dead', 'cancelled') THEN now() - random() * interval '6 hours' END,
    CASE WHEN s.state = 'running' THEN now() END,
    CASE WHEN s.state = 'running' THEN g END,
    CASE WHEN s.state = 'running' THEN now() + interval '1 hour' END
FROM generate_series($1::bigint, $2::bigint) AS g,
LATERAL (SELECT CASE WHEN g % 100 < 80 THEN 'succeeded' WHEN g % 100 < 83 THEN 'dead'
    WHEN g % 100 < 84 THEN 'cancelled' WHEN g % 100 < 85 THEN 'running' ELSE 'pending' END AS state,
    CASE WHEN g % 100 = 85 THEN 'retrying' WHEN g % 100 > 95 THEN 'scheduled' ELSE 'ready' END AS k) AS s
"""


async def _times_ms(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        await call()
        took.append((time.perf_counter() - start) * 1000)
    return took


async def _median_ms(call: Callable[[], Awaitable[object]], times: int) -> float:
    return statistics.median(await _times_ms(call, times))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _p95(took: list[float]) -> float:
    return statistics.quantiles(took, n=20)[-1]


@contextlib.asynccontextmanager
async def _scraped(server: Server, every: float = 1.0) -> AsyncIterator[None]:
    """Scrapes the server's /metrics every `every` seconds meanwhile (harsher than Prometheus' 15 s)."""

    async def scrape() -> None:
        async with httpx.AsyncClient() as http:
            while True:
                (await http.get(f"http://127.0.0.1:{server.http_port}/metrics")).raise_for_status()
                await asyncio.sleep(every)

    task = asyncio.create_task(scrape())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _set_triggers(admin: asyncpg.Connection, names: Sequence[str], enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    for name in names:
        await admin.execute(f"ALTER TABLE spool.jobs {verb} TRIGGER {name}")


async def _toggled(url: str, part: Params, names: Sequence[str]) -> dict[bool, Result]:
    """The SQL ceiling's batched drain with the triggers `names` enabled and disabled, alternating."""
    results: dict[bool, list[Result]] = {True: [], False: []}
    admin = await asyncpg.connect(url)
    try:
        async with ceiling.sql_drivers(url) as use:
            for n in range(ROUNDS):
                for enabled in (True, False) if n % 2 == 0 else (False, True):
                    await _set_triggers(admin, names, enabled)
                    results[enabled].append(await ceiling.run_case(DRAIN, part, admin, use, Meter(admin)))
    finally:
        await _set_triggers(admin, names, True)
        await admin.close()
    return {k: sum_results(v) for k, v in results.items()}


def _row(case: str, off: Result, on: Result) -> tuple[object, ...]:
    db = [r.cpu.database / r.jobs * 1000 if r.cpu and r.cpu.database is not None else 0.0 for r in (off, on)]
    return (case, off.rate, on.rate, f"{100 * on.rate / off.rate:.1f}%", f"{db[0]:.3f} / {db[1]:.3f}")


@contextlib.asynccontextmanager
async def _otlp_sink(counts: dict[str, int]) -> AsyncIterator[str]:
    """bench/otlp_sink.py in its own process; yields its URL, fills `counts` when it has stopped."""
    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.otlp_sink", str(port), stdout=asyncio.subprocess.PIPE
    )
    assert sink.stdout is not None
    try:
        if (await asyncio.wait_for(sink.stdout.readline(), 30)).strip() != b"ready":
            raise RuntimeError("bench.otlp_sink did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        sink.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(sink.communicate(), 30)
        counts.update(json.loads(out.decode().strip().splitlines()[-1]))


def _traced(endpoint: str) -> dict[str, str]:
    """spoold's tracing as a user turns it on, every span sampled, exported in batches to the sink."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_SERVICE_NAME": "spoold-bench",
    }


async def spoold_cost(url: str, params: Params) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    """Each case through the three spoolds, in an order rotated by one each round."""
    part = params.split(ROUNDS)
    results: dict[tuple[Case, str], list[Result]] = {(c, m): [] for c in CASES for m in MODES}
    exported: dict[str, int] = {}
    admin = await asyncpg.connect(url)
    try:
        async with (
            _otlp_sink(exported) as endpoint,
            spoold(url, metrics="0", tracing="0") as off,
            spoold(url, http=True, tracing="0") as metered,
            spoold(url, metrics="0", environment=_traced(endpoint)) as traced,
        ):
            servers = dict(zip(MODES, (off, metered, traced), strict=True))
            for n in range(ROUNDS):
                for case in CASES:
                    for mode in MODES[n % 3 :] + MODES[: n % 3]:  # each mode first, second and last in turn
                        server = servers[mode]
                        async with grpc_drivers(server, case.batch > 1) as use, _scraped(metered):
                            meter = Meter(admin, server.pid)
                            results[(case, mode)].append(await ceiling.run_case(case, part, admin, use, meter))
    finally:
        await admin.close()
    rows: list[tuple[object, ...]] = []
    for case in CASES:
        off_sum, metrics_sum, tracing_sum = (sum_results(results[(case, m)]) for m in MODES)
        rows.append(
            (
                "batched (100/RPC)" if case.batch > 1 else "one job per RPC",
                f"{off_sum.rate:.0f}",
                f"{metrics_sum.rate:.0f}",
                f"{tracing_sum.rate:.0f}",
                f"{100 * metrics_sum.rate / off_sum.rate:.1f}%",
                f"{100 * tracing_sum.rate / off_sum.rate:.1f}%",
                " | ".join(_spoold_ms(r) for r in (off_sum, metrics_sum, tracing_sum)),
            )
        )
    return rows, exported


def _spoold_ms(result: Result) -> str:
    """spoold's CPU per job, in ms."""
    server = result.cpu.server if result.cpu is not None else None
    return "-" if server is None or result.jobs <= 0 else f"{1000 * server / result.jobs:.3f}"


async def trigger_cost(url: str, params: Params) -> list[tuple[object, ...]]:
    part = params.split(ROUNDS)
    counts = await _toggled(url, part, COUNT_TRIGGERS)
    tail = await _toggled(url, part, TAIL_TRIGGERS)
    return [
        _row("SQL ceiling, count triggers off / on", counts[False], counts[True]),
        _row("SQL ceiling, tail triggers off / on (nobody tailing)", tail[False], tail[True]),
    ]


async def scrape_cost(url: str, jobs: int) -> tuple[list[tuple[object, ...]], float]:
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("TRUNCATE spool.jobs CASCADE")
        for start in range(1, jobs + 1, 100_000):
            await admin.execute(_HISTORY, start, min(jobs, start + 99_999))
        await admin.fetchval("SELECT spool.roll_up_counts(now())")
        await settle(admin)
        rows = await admin.fetchval("SELECT count(*) FROM spool.queue_counts")
        scan = await _median_ms(lambda: admin.fetch(SCAN), 3)
        async with spoold(url, http=True) as server:
            stub = admin_service_pb2_grpc.AdminServiceStub(server.channel)
            async with httpx.AsyncClient() as http:
                metrics = f"http://127.0.0.1:{server.http_port}/metrics"
                await http.get(metrics)  # the first scrape prepares the statement
                scrapes = await _times_ms(lambda: http.get(metrics), 40)
                body = (await http.get(metrics)).text
            listings = await _times_ms(lambda: stub.ListQueues(adm.ListQueuesRequest(page_size=1000)), 40)
    finally:
        await admin.close()
    gauges = next(
        float(ln.split()[-1]) * 1000 for ln in body.splitlines() if ln.startswith("spool_queue_gauges_seconds")
    )
    scrape = statistics.median(scrapes)
    return [
        ("GET /metrics (whole scrape, HTTP included)", f"{scrape:.1f}", f"{_p95(scrapes):.1f}", rows),
        ("  of which the queue gauges' query (last scrape)", f"{gauges:.1f}", "", ""),
        (
            "ListQueues over gRPC, 100 queues (counts)",
            f"{statistics.median(listings):.1f}",
            f"{_p95(listings):.1f}",
            "",
        ),
        ("ListQueues' scan before migration 0018 (SQL only, median of 3)", f"{scan:.1f}", "", ""),
    ], scrape


async def main(quick: bool, only: str | None) -> None:
    jobs = 100_000 if quick else 1_000_000
    async with scratch_database() as url:
        if only in (None, "drain"):
            print(f"load average before: {_load()}")
            rows, exported = await spoold_cost(url, Params.of(quick))
            print(f"load average after: {_load()}")
            table(
                "metrics and tracing: drain x8 (jobs/s), the three spoolds in rotating order each round",
                ("case", "off", "metrics", "tracing", "metrics/off", "tracing/off", "spoold CPU ms/job off|m|t"),
                rows,
            )
            print(
                f"  tracing: {exported.get('spans', 0):,} spans received by the OTLP sink "
                f"in {exported.get('requests', 0):,} requests ({exported.get('bytes', 0):,} bytes)"
            )
            kept = float(str(rows[0][4]).rstrip("%"))
            target("metrics cost on the batched drain", f"{100 - kept:.1f}%", "<= 3%", kept >= 97)
            traced = float(str(rows[0][5]).rstrip("%"))
            print(f"  tracing cost on the batched drain: {100 - traced:.1f}% (no target in issue 19; reported)")
        if only in (None, "drain", "triggers"):
            table(
                "triggers: the SQL ceiling's batched drain (jobs/s), alternating rounds",
                ("case", "off jobs/s", "on jobs/s", "on/off", "postgres CPU ms/job off / on"),
                await trigger_cost(url, Params.of(quick)),
            )
        if only in (None, "scrape"):
            scrape_rows, scrape = await scrape_cost(url, jobs)
            table(
                f"metrics: at {jobs:,} jobs over 100 queues (ms, 40 calls)",
                ("read", "p50 ms", "p95 ms", "count rows"),
                scrape_rows,
            )
            target(f"scrape at {jobs:,} jobs, 100 queues", f"{scrape:.1f} ms", "<= 50 ms", scrape <= 50)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases and 100,000 jobs")
    p.add_argument(
        "--only",
        choices=("drain", "triggers", "scrape"),
        help="run only the drain cost, only its SQL-ceiling trigger cases, or only the scrape part",
    )
    args = p.parse_args(argv)
    run(main(args.quick, args.only))


if __name__ == "__main__":
    cli()
