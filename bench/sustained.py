"""`python -m bench.sustained [--minutes N] [--rate R] [--quick]`: a steady produce+consume run at a
fixed offered rate through spoold, with another session holding a snapshot open (REPEATABLE READ,
idle in transaction) for a stretch in the middle, so vacuum cannot remove any dead row meanwhile.

Every interval it prints throughput, pickup latency (EnqueueBatch returning -> Lease response) p50
and p99, the backlog, and the sizes of spool.jobs (heap, total), of each of its indexes and of
spool.attempts. The pruner runs with a short retention, as a deployment keeps finished jobs from
piling up. The verdict: sizes stop growing once the snapshot is released, and throughput is back
at the offered rate in the first full interval after.

Default: 10 minutes, hold from minute 3 to minute 6. --quick: 2 minutes in 20 s intervals, a 40 s
hold from 0:20 to 1:00, 10 s retention.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, cast

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from bench.drivers import PAYLOAD
from bench.report import table, target
from bench.scratch import QUEUE, Server, run, scratch_database, spoold
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

CONSUMERS = 4
LEASE_MAX = 50
TICKS_PER_SECOND = 20  # the producer sends rate/20 jobs per EnqueueBatch, 20 times a second
GROWTH_ALLOWED = 1.05  # after the hold, a size may still move by this much and count as flat
RECOVERED = 0.95  # share of the offered rate that counts as recovered


@dataclass(frozen=True)
class Plan:
    seconds: int
    interval: int
    hold_from: int
    hold_until: int
    rate: int
    retention: int
    vacuum_every: float  # 0: leave vacuuming to autovacuum

    @property
    def intervals(self) -> int:
        return self.seconds // self.interval


@dataclass
class Window:
    """What happened in one interval: jobs acked and the pickup latencies seen."""

    acked: int = 0
    latencies: list[float] = field(default_factory=list)


def async_stub(channel: grpc.aio.Channel) -> QueueServiceAsyncStub:
    return cast("QueueServiceAsyncStub", queue_service_pb2_grpc.QueueServiceStub(channel))  # type: ignore[redundant-cast]


class Traffic:
    """Shared by the producer and the consumers: send times by job id, and the current window."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.early: dict[str, float] = {}  # Lease reply handled before its EnqueueBatch reply
        self.window = Window()
        self.enqueued = 0
        self.acked = 0

    def on_sent(self, ids: Sequence[str], at: float) -> None:
        self.enqueued += len(ids)
        for i in ids:
            seen = self.early.pop(i, None)
            if seen is None:
                self.sent[i] = at
            else:
                self.window.latencies.append(max(0.0, seen - at))

    def on_leased(self, ids: Sequence[str], at: float) -> None:
        for i in ids:
            sent = self.sent.pop(i, None)
            if sent is None:
                self.early[i] = at
            else:
                self.window.latencies.append(at - sent)

    def on_acked(self, count: int) -> None:
        self.acked += count
        self.window.acked += count

    def swap(self) -> Window:
        done, self.window = self.window, Window()
        return done


async def produce(stub: QueueServiceAsyncStub, traffic: Traffic, rate: int, until: float) -> None:
    """Offers `rate` jobs/s on an absolute schedule: a slow reply delays one batch, not the rate."""
    per_tick = max(1, rate // TICKS_PER_SECOND)
    batch = qs.EnqueueBatchRequest(jobs=[qs.EnqueueRequest(queue=QUEUE, payload=PAYLOAD)] * per_tick)
    start, tick = time.perf_counter(), 0
    while time.perf_counter() < until:
        reply = await stub.EnqueueBatch(batch)
        traffic.on_sent([r.job.id for r in reply.results], time.perf_counter())
        tick += 1
        await asyncio.sleep(max(0.0, start + tick / TICKS_PER_SECOND - time.perf_counter()))  # pacing


async def consume(stub: QueueServiceAsyncStub, traffic: Traffic) -> None:
    lease = qs.LeaseRequest(queues=[QUEUE], max_jobs=LEASE_MAX, wait=Duration(seconds=20), worker_id="sustained")
    while True:
        reply = await stub.Lease(lease)
        if not reply.jobs:
            continue
        traffic.on_leased([j.job.id for j in reply.jobs], time.perf_counter())
        acks = [qs.AckRequest(job_id=j.job.id, lease_token=j.lease_token) for j in reply.jobs]
        await stub.AckBatch(qs.AckBatchRequest(acks=acks))
        traffic.on_acked(len(acks))


@dataclass(frozen=True)
class Sizes:
    heap: int
    total: int
    attempts: int
    indexes: dict[str, int]
    dead: int
    vacuums: int  # of spool.jobs, by autovacuum or not


_SIZES = """
SELECT pg_relation_size('spool.jobs') AS heap, pg_total_relation_size('spool.jobs') AS total,
    pg_total_relation_size('spool.attempts') AS attempts,
    (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'spool.jobs'::regclass) AS dead,
    (SELECT vacuum_count + autovacuum_count FROM pg_stat_user_tables WHERE relid = 'spool.jobs'::regclass)
        AS vacuums
"""
_INDEXES = """
SELECT c.relname AS name, pg_relation_size(i.indexrelid) AS size
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'spool.jobs'::regclass ORDER BY c.relname
"""


async def sizes(conn: asyncpg.Connection) -> Sizes:
    # The statistics collector is read from a snapshot cached per transaction; start afresh.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(_SIZES)
    assert row is not None  # a SELECT with no FROM returns one row
    indexes = {r["name"].removeprefix("jobs_").removesuffix("_idx"): r["size"] for r in await conn.fetch(_INDEXES)}
    return Sizes(row["heap"], row["total"], row["attempts"], indexes, row["dead"] or 0, row["vacuums"] or 0)


@contextlib.asynccontextmanager
async def snapshot_held(db_url: str) -> AsyncIterator[None]:
    """Another session, idle in a REPEATABLE READ transaction that has read spool.jobs: its snapshot
    keeps the xmin horizon where it was, so no row deleted or updated after it can be vacuumed."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await conn.fetchval("SELECT 1 FROM spool.jobs LIMIT 1")
        yield
        await conn.execute("ROLLBACK")
    finally:
        await conn.close()


@dataclass(frozen=True)
class Sample:
    at: int  # seconds since the start, at the end of the interval
    held: bool
    window: Window
    sizes: Sizes
    backlog: int


async def vacuum_stand_in(db_url: str, every: float, until: float) -> None:
    """What autovacuum would do on a server that has it turned off (autovacuum = off is a common
    setting on CI machines): VACUUM both tables every `every` seconds, the default naptime being 60."""
    conn = await asyncpg.connect(db_url)
    try:
        while time.perf_counter() + every < until:
            await asyncio.sleep(every)  # a schedule, as autovacuum's naptime is
            await conn.execute("VACUUM spool.jobs, spool.attempts")
    finally:
        await conn.close()


async def hold(plan: Plan, db_url: str, start: float) -> None:
    await asyncio.sleep(max(0.0, start + plan.hold_from - time.perf_counter()))  # a scheduled phase
    async with snapshot_held(db_url):
        await asyncio.sleep(max(0.0, start + plan.hold_until - time.perf_counter()))


async def monitor(plan: Plan, conn: asyncpg.Connection, traffic: Traffic, start: float) -> list[Sample]:
    samples = [Sample(0, False, Window(), await sizes(conn), 0)]
    for n in range(1, plan.intervals + 1):
        await asyncio.sleep(max(0.0, start + n * plan.interval - time.perf_counter()))  # a scheduled report
        at = n * plan.interval
        held = plan.hold_from < at <= plan.hold_until
        sample = Sample(at, held, traffic.swap(), await sizes(conn), traffic.enqueued - traffic.acked)
        samples.append(sample)
        print_sample(plan, sample)
    return samples


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _ms(values: Sequence[float], q: int) -> str:
    if len(values) < 2:
        return "-"
    return f"{1000 * statistics.quantiles(values, n=100, method='inclusive')[q - 1]:.1f}"


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def print_sample(plan: Plan, s: Sample) -> None:
    w = s.window
    print(
        f"  {_clock(s.at)}{' held' if s.held else '     '}  {w.acked / plan.interval:6.0f} jobs/s"
        f"  p50 {_ms(w.latencies, 50)} ms  p99 {_ms(w.latencies, 99)} ms  backlog {s.backlog}"
        f"  jobs {_mb(s.sizes.total)} MB (heap {_mb(s.sizes.heap)})  attempts {_mb(s.sizes.attempts)} MB"
        f"  dead {s.sizes.dead}",
        flush=True,
    )


async def bench(plan: Plan) -> tuple[Plan, list[Sample]]:
    settings = {"retention_succeeded": str(plan.retention), "pruner_interval": "5"}
    async with scratch_database() as db_url, spoold(db_url, **settings) as server:
        conn = await asyncpg.connect(db_url)
        try:
            if await conn.fetchval("SHOW autovacuum") == "on":
                plan = replace(plan, vacuum_every=0)
            return plan, await drive(plan, server, db_url, conn)
        finally:
            await conn.close()


async def drive(plan: Plan, server: Server, db_url: str, conn: asyncpg.Connection) -> list[Sample]:
    traffic = Traffic()
    channels = [grpc.aio.insecure_channel(server.target) for _ in range(CONSUMERS)]
    consumers = [asyncio.create_task(consume(async_stub(c), traffic)) for c in channels]
    start = time.perf_counter()
    vacuum = (
        f"VACUUM by the benchmark every {plan.vacuum_every:g} s (autovacuum is off)"
        if plan.vacuum_every
        else "autovacuum on"
    )
    print(
        f"\n{plan.rate} jobs/s offered for {_clock(plan.seconds)}; snapshot held "
        f"{_clock(plan.hold_from)}-{_clock(plan.hold_until)}; succeeded jobs kept {plan.retention} s; {vacuum}",
        flush=True,
    )
    try:
        producer = produce(server.stub(), traffic, plan.rate, start + plan.seconds)
        others = [producer, hold(plan, db_url, start)]
        if plan.vacuum_every:
            others.append(vacuum_stand_in(db_url, plan.vacuum_every, start + plan.seconds))
        samples, _ = await asyncio.gather(monitor(plan, conn, traffic, start), asyncio.gather(*others))
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for c in channels:
            await c.close()
    return samples


@dataclass(frozen=True)
class Verdict:
    flat: bool
    growth: float
    recovered: bool
    rate_after: float


def judge(plan: Plan, samples: Sequence[Sample]) -> Verdict:
    """Sizes: from one interval after the hold (autovacuum may need that long to come round) to the
    end, jobs and attempts may grow by GROWTH_ALLOWED at most. Throughput: the first full interval
    after the hold reaches RECOVERED of the offered rate."""
    after = [s for s in samples if s.at > plan.hold_until]
    if len(after) < 2:
        return Verdict(False, 0.0, False, 0.0)
    base, last = after[0].sizes, after[-1].sizes
    growth = (last.total + last.attempts) / (base.total + base.attempts)
    rate_after = after[0].window.acked / plan.interval
    return Verdict(growth <= GROWTH_ALLOWED, growth, rate_after >= RECOVERED * plan.rate, rate_after)


def report(plan: Plan, samples: Sequence[Sample]) -> Verdict:
    names = list(samples[0].sizes.indexes)
    rows = [
        (
            _clock(s.at) + (" held" if s.held else ""),
            s.window.acked / plan.interval if s.at else "-",
            _ms(s.window.latencies, 50),
            _ms(s.window.latencies, 99),
            s.backlog,
            _mb(s.sizes.heap),
            _mb(s.sizes.total),
            *[_mb(s.sizes.indexes.get(n, 0)) for n in names],
            _mb(s.sizes.attempts),
            s.sizes.dead,
            s.sizes.vacuums,
        )
        for s in samples
    ]
    headers = ("at", "jobs/s", "p50 ms", "p99 ms", "backlog", "heap MB", "jobs total MB", *[f"{n} MB" for n in names])
    headers += ("attempts MB", "dead rows", "vacuums")
    table(
        f"sustained: {plan.rate} jobs/s offered, snapshot held {_clock(plan.hold_from)}-{_clock(plan.hold_until)}",
        headers,
        rows,
    )
    v = judge(plan, samples)
    print(
        f"  verdict: sizes after the hold {'FLAT' if v.flat else 'STILL GROWING'} (x{v.growth:.2f} from "
        f"{_clock(plan.hold_until + plan.interval)} to the end); throughput "
        f"{'RECOVERED' if v.recovered else 'NOT RECOVERED'} ({v.rate_after:.0f} of {plan.rate} jobs/s in the "
        "first interval after the hold)",
        flush=True,
    )
    target("sizes flat after an xmin hold ends", f"x{v.growth:.2f}", f"<= x{GROWTH_ALLOWED:.2f}", v.flat)
    target(
        "throughput after the hold ends",
        f"{v.rate_after:.0f} jobs/s",
        f">= {RECOVERED:.0%} of {plan.rate}",
        v.recovered,
    )
    return v


def plan_of(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(120, 20, 20, 60, args.rate, 10, args.vacuum_every or 20)
    seconds = int(args.minutes * 60)
    return Plan(seconds, 60, 3 * seconds // 10, 6 * seconds // 10, args.rate, 60, args.vacuum_every or 60)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sustained", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 minutes, 20 s intervals, a 40 s hold")
    p.add_argument("--minutes", type=float, default=10, help="run length; the hold covers 30%%-60%% of it")
    p.add_argument("--rate", type=int, default=300, help="jobs per second offered")
    p.add_argument(
        "--vacuum-every",
        type=float,
        default=0,
        help="seconds between VACUUMs run by the benchmark where the server has autovacuum off "
        "(default 60, or 20 with --quick); with autovacuum on, it is left to autovacuum",
    )
    plan = plan_of(p.parse_args(argv))
    plan, samples = run(bench(plan))
    report(plan, samples)


if __name__ == "__main__":
    main()
