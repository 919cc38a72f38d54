"""`python -m bench.search_flood [--quick] [--seconds S] [--searchers N]`: the hot path's latency
(Enqueue, Lease, Ack p50/p99) while a flood of worst-case searches runs, against the same without
the flood, in one run.

The history holds ordinary jobs, DEAD jobs whose 60,000-character error text makes the longest
allowed `error_contains` cost the most (a run of `a`s that the pattern follows almost to its end,
at every position), and jobs whose 1 MiB payload is an array of small arrays, which makes a
`payload_contains` of as many small arrays as allowed cost the most (jsonb compares each with
each). The flood: N searchers (default 16), each calling in a loop ListJobs with that error text,
ListJobs with that payload, ListQueues (stats over the whole history) and Requeue by that error
filter (which matches nothing). Hot path: 4 clients, each Enqueue, Lease(max_jobs=1) and Ack in
turn. Phases: quiet, flood, quiet again; the reference is both quiet phases together. The goal:
during the flood, each RPC's p99 at most twice its reference.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc

from bench.report import table, target
from bench.scratch import run, scratch_database, settle, spoold
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.api.search import MAX_ERROR_CONTAINS, MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

CLIENTS = 4
HOT_QUEUE = "hot"
ERROR_TEXT_CHARS = 60_000
PAYLOAD_ARRAYS = 100_000  # {"a": [[0], [1], ...]}: just under 1 MiB as jsonb prints it

_ORDINARY = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration, finished_at)
SELECT 'history-' || (g % 20), 'succeeded', jsonb_build_object('n', g), 'application/json', 1,
    'exponential', interval '1 second', interval '5 minutes', 2, true, interval '30 seconds', now()
FROM generate_series(1, $1) AS g
"""
# The error holds every trigram of the pattern (so the trigram index keeps the row) but never the
# pattern: 'aab' early, then a run of a's that the pattern's a's match up to its final b.
_ERRORS = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration, finished_at,
    error_type, error_message)
SELECT 'flood', 'dead', '{}', 'application/json', 1, 'exponential', interval '1 second',
    interval '5 minutes', 2, true, interval '30 seconds', now(), 'Error',
    'x aab ' || repeat('a', $2) || ' ' || g
FROM generate_series(1, $1) AS g
"""
_PAYLOADS = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration, finished_at)
SELECT 'flood', 'succeeded', jsonb_build_object('a', (SELECT jsonb_agg(jsonb_build_array(i)) FROM
    generate_series(0, $2 - 1) AS i)), 'application/json', 1, 'exponential', interval '1 second',
    interval '5 minutes', 2, true, interval '30 seconds', now()
FROM generate_series(1, $1) AS g
"""


async def load(db_url: str, ordinary: int, errors: int, payloads: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(_ORDINARY, ordinary)
        await conn.execute(_ERRORS, errors, ERROR_TEXT_CHARS)
        await conn.execute(_PAYLOADS, payloads, PAYLOAD_ARRAYS)
        await settle(conn)
    finally:
        await conn.close()


# The server's bounds by default; larger ones show what an older server let through.
ERROR_CHARS = MAX_ERROR_CONTAINS
# Each small array counts twice: as an element of the outer array, and by its own one element.
WANTED_ARRAYS = MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS // 2


def worst_filters(error_chars: int, wanted_arrays: int) -> tuple[job_pb2.JobFilter, job_pb2.JobFilter]:
    """The longest error text allowed that matches nothing, and the costliest payload containment
    allowed that matches nothing: the payload's last arrays, which jsonb looks for one by one from
    the first, and one it never finds."""
    error = job_pb2.JobFilter(error_contains="a" * (error_chars - 1) + "b")
    wanted = [[PAYLOAD_ARRAYS - 1 - i] for i in range(wanted_arrays - 1)] + [[-1]]
    payload = job_pb2.JobFilter(payload_contains=json.dumps({"a": wanted}))
    return error, payload


class Hot:
    """Latencies (ms) of the hot path's RPCs, per phase."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        self.phase = "quiet"
        self.errors: collections.Counter[str] = collections.Counter()

    async def timed(self, name: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            self.errors[f"{name} {exc.code().name}"] += 1
            return None
        self.samples[(self.phase, name)].append((time.perf_counter() - started) * 1000)
        return result

    async def client(self, s: QueueServiceAsyncStub, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.timed("Enqueue", s.Enqueue(qs.EnqueueRequest(queue=HOT_QUEUE, payload=b"{}")))
            leased = await self.timed("Lease", s.Lease(qs.LeaseRequest(queues=[HOT_QUEUE], max_jobs=1)))
            for job in getattr(leased, "jobs", ()):
                ack = qs.AckRequest(job_id=job.job.id, lease_token=job.lease_token)
                await self.timed("Ack", s.Ack(ack))


Filters = tuple[job_pb2.JobFilter, job_pb2.JobFilter]


def flood_calls(channel: grpc.aio.Channel, filters: Filters) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    stub = qs_stub(channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    error, payload = filters
    return [
        ("ListJobs error_contains", lambda: stub.ListJobs(qs.ListJobsRequest(filter=error))),
        ("ListJobs payload_contains", lambda: stub.ListJobs(qs.ListJobsRequest(filter=payload))),
        ("ListQueues", lambda: admin.ListQueues(adm.ListQueuesRequest())),
        ("Requeue by filter", lambda: stub.Requeue(qs.RequeueRequest(filter=error))),
    ]


async def outcome(call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


async def alone(channel: grpc.aio.Channel, filters: Filters) -> list[tuple[str, str, float]]:
    """Each search of the flood once, on an otherwise idle server: what one costs."""
    rows = []
    for name, call in flood_calls(channel, filters):
        started = time.perf_counter()
        code = await outcome(call)
        rows.append((name, code, (time.perf_counter() - started) * 1000))
    return rows


async def searcher(
    channel: grpc.aio.Channel, n: int, filters: Filters, stop: asyncio.Event, outcomes: collections.Counter[str]
) -> None:
    calls = flood_calls(channel, filters)
    i = n
    while not stop.is_set():
        name, call = calls[i % len(calls)]
        i += 1
        outcomes[f"{name}: {await outcome(call)}"] += 1


def qs_stub(channel: grpc.aio.Channel) -> QueueServiceAsyncStub:
    return queue_service_pb2_grpc.QueueServiceStub(channel)


async def phase(hot: Hot, name: str, seconds: float) -> None:
    hot.phase = name
    await asyncio.sleep(seconds)  # a benchmark's measuring window, not a synchronisation


def p(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else float("nan")


async def main_async(seconds: float, searchers: int, filters: Filters, errors: int, payloads: int) -> None:
    async with scratch_database() as db_url:
        await load(db_url, 100_000, errors, payloads)
        print(
            f"history: 100,000 ordinary jobs, {errors} with {ERROR_TEXT_CHARS:,}-character errors, "
            f"{payloads} with {PAYLOAD_ARRAYS:,}-array payloads",
            flush=True,
        )
        async with spoold(db_url) as server:
            single = await alone(server.channel, filters)
            hot, stop, flood_stop = Hot(), asyncio.Event(), asyncio.Event()
            channels = [grpc.aio.insecure_channel(server.target) for _ in range(CLIENTS)]
            clients = [asyncio.create_task(hot.client(qs_stub(ch), stop)) for ch in channels]
            outcomes: collections.Counter[str] = collections.Counter()
            await phase(hot, "warm-up", 2)
            await phase(hot, "quiet", seconds)
            flood_channel = grpc.aio.insecure_channel(server.target)
            flood = [
                asyncio.create_task(searcher(flood_channel, n, filters, flood_stop, outcomes)) for n in range(searchers)
            ]
            await phase(hot, "flood", seconds)
            hot.phase = "drain"
            flood_stop.set()
            await asyncio.gather(*flood)
            await phase(hot, "quiet ", seconds)  # the second quiet phase, kept apart until the end
            stop.set()
            await asyncio.gather(*clients)
            for ch in [*channels, flood_channel]:
                await ch.close()
    table("each search of the flood alone, idle server", ("search", "code", "ms"), single)
    report(hot, outcomes, seconds, searchers)


def report(hot: Hot, outcomes: collections.Counter[str], seconds: float, searchers: int) -> None:
    rows, met = [], True
    for name in ("Enqueue", "Lease", "Ack"):
        quiet = hot.samples[("quiet", name)] + hot.samples[("quiet ", name)]
        flood = hot.samples[("flood", name)]
        q99, f99 = p(quiet, 99), p(flood, 99)
        rows.append((name, len(quiet), p(quiet, 50), q99, len(flood), p(flood, 50), f99, f"{f99 / q99:.2f}x"))
        met = met and f99 <= 2 * q99
    table(
        f"hot path, 4 clients, ms: quiet ({2 * seconds:g} s) against {searchers} searchers flooding ({seconds:g} s)",
        ("RPC", "quiet calls", "p50", "p99", "flood calls", "p50", "p99", "p99 flood/quiet"),
        rows,
    )
    table("the flood's answers", ("search: code", "calls"), sorted(outcomes.items()))
    if hot.errors:
        table("hot path errors", ("RPC code", "calls"), sorted(hot.errors.items()))
    worst = max(float(r[-1].rstrip("x")) for r in rows)
    target("hot path p99 during a search flood", f"{worst:.2f}x quiet", "<= 2x", met and not hot.errors)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search_flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s phases and a smaller history")
    parser.add_argument("--seconds", type=float, default=None, help="length of each phase (default 20)")
    parser.add_argument("--searchers", type=int, default=16)
    parser.add_argument("--error-chars", type=int, default=ERROR_CHARS, help="error_contains length (the limit)")
    parser.add_argument("--wanted-arrays", type=int, default=WANTED_ARRAYS, help="arrays in payload_contains")
    args = parser.parse_args(argv)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    errors, payloads = (500, 5) if args.quick else (2000, 20)
    filters = worst_filters(args.error_chars, args.wanted_arrays)
    run(main_async(seconds, args.searchers, filters, errors, payloads))


if __name__ == "__main__":
    main()
