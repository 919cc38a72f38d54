"""Throughput through gRPC beside the ceiling: each case runs on Spool's SQL over asyncpg and then
through spoold (a subprocess) with raw grpc.aio stubs, back to back, so the ratio compares two
figures measured under the same load on a shared machine.

Cases: enqueue only; drain N pre-enqueued no-op jobs; steady produce+consume. One job per call
(Enqueue; Lease max_jobs=1; Ack) or batches of 100 (EnqueueBatch; Lease max_jobs=100; AckBatch),
at 1 and 8 concurrent clients (each its own connection or gRPC channel). "+next" rows chain: each
Ack (or AckBatch) leases the next jobs in the same call, so one job per call is one RPC per job.

    python -m bench.throughput [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import grpc

from bench import ceiling, worker
from bench.ceiling import Case, Params
from bench.cpu import Meter
from bench.drivers import Driver, GrpcDriver
from bench.report import ratio, table, target
from bench.scratch import Server, fill, reset, run, scratch_database, spoold
from bench.workloads import Result

HEADERS = ("case", "ceiling jobs/s", "spool jobs/s", "ratio", "CPU ms/job ceiling bench/-/pg", "spool bench/spoold/pg")


@dataclass(frozen=True)
class Pair:
    case: Case
    ceiling: Result
    spool: Result

    def row(self) -> tuple[object, ...]:
        def cpu(r: Result) -> str:
            return r.cpu.per_job_ms(r.jobs) if r.cpu else "-"

        c, s = self.ceiling, self.spool
        return (self.case.label, c.rate, s.rate, ratio(s.rate, c.rate), cpu(c), cpu(s))


@contextlib.asynccontextmanager
async def grpc_drivers(server: Server, batched: bool, count: int = 8) -> AsyncIterator[list[GrpcDriver]]:
    """One channel per client, as separate workers would have."""
    channels = [grpc.aio.insecure_channel(server.target) for _ in range(count)]
    try:
        from spool.v1 import queue_service_pb2_grpc

        yield [GrpcDriver(queue_service_pb2_grpc.QueueServiceStub(ch), batched) for ch in channels]
    finally:
        for ch in channels:
            await ch.close()


ROUNDS = 2  # each case alternates ceiling-first and spool-first, so drift in load hits both alike


async def measure(params: Params, selected: Sequence[Case]) -> tuple[list[Pair], list[tuple[object, ...]]]:
    pairs = []
    part = params.split(ROUNDS)
    async with scratch_database() as url, spoold(url) as server, ceiling.sql_drivers(url) as sql:
        admin = await asyncpg.connect(url)
        try:
            db_meter, spool_meter = Meter(admin), Meter(admin, server.pid)
            async with grpc_drivers(server, False) as single, grpc_drivers(server, True) as batched:
                for case in selected:
                    rpc = single if case.batch == 1 else batched
                    results: dict[str, list[Result]] = {"ceiling": [], "spool": []}
                    for n in range(ROUNDS):
                        order: list[tuple[str, Sequence[Driver], Meter]] = [
                            ("ceiling", sql, db_meter),
                            ("spool", rpc, spool_meter),
                        ]
                        for name, drivers, meter in order if n % 2 == 0 else order[::-1]:
                            results[name].append(await ceiling.run_case(case, part, admin, drivers, meter))
                    pairs.append(Pair(case, sum_results(results["ceiling"]), sum_results(results["spool"])))
            workers = await worker_rows(server, admin, params, pairs)
        finally:
            await admin.close()
    return pairs, workers


WORKER_JOBS = 20_000  # a Worker that falls behind its leases makes longer drains take minutes
# Worker concurrency -> the ceiling case it is compared with (the Worker leases up to its free slots).
WORKER_CASES = {1: ("drain", 1, 1), 8: ("drain", 1, 8), 100: ("drain", 100, 1)}


async def worker_rows(
    server: Server, admin: asyncpg.Connection, params: Params, pairs: Sequence[Pair]
) -> list[tuple[object, ...]]:
    """Drains through spool.Worker (no-op async handler) beside the matching ceiling drain."""
    found = {(p.case.workload, p.case.batch, p.case.connections): p for p in pairs if not p.case.chained}
    rows: list[tuple[object, ...]] = []
    for concurrency, key in WORKER_CASES.items():
        reference = found.get(key)
        if reference is None:
            continue
        jobs = min(params.jobs(key[1]), WORKER_JOBS)
        await reset(admin)
        await fill(admin, jobs)
        with worker.tallied_logs() as logs:
            result, failed = await worker.drain(server, admin, jobs, concurrency)
        ref = reference.ceiling.rate
        label = f"drain   Worker     c={concurrency}"
        warnings = logs["WARNING"] + logs["ERROR"]
        rows.append((label, reference.case.label, ref, result.rate, ratio(result.rate, ref), failed, warnings))
    return rows


def sum_results(results: Sequence[Result]) -> Result:
    total = results[0]
    for r in results[1:]:
        total = total + r
    return total


def check_targets(pairs: Sequence[Pair]) -> None:
    found = {(p.case.workload, p.case.batch, p.case.connections, p.case.chained): p for p in pairs}
    if batched := found.get(("drain", 100, 8, False)):
        share = batched.spool.rate / batched.ceiling.rate
        target("batched drain vs batched ceiling (x8)", f"{share:.0%}", ">= 40%", share >= 0.40)
    if single := found.get(("drain", 1, 8, True)):
        share = single.spool.rate / single.ceiling.rate
        target("one job per RPC (Ack +next) vs one per transaction (drain x8)", f"{share:.0%}", ">= 60%", share >= 0.60)
    if single := found.get(("drain", 1, 8, False)):  # not a target: the same, in two calls per job
        share = single.spool.rate / single.ceiling.rate
        print(f"  for comparison, Lease + Ack (two calls per job) vs one per transaction (drain x8): {share:.0%}")


async def main(quick: bool, workloads: Sequence[str] = ceiling.WORKLOADS) -> None:
    # --quick keeps the 8-client cases, where the targets are, so `python -m bench --quick` stays under 2 minutes.
    connections = (8,) if quick else ceiling.CONNECTIONS
    selected = [*ceiling.cases(workloads, connections), *ceiling.chained_cases(workloads)]
    pairs, workers = await measure(Params.of(quick), selected)
    table("throughput: spoold over gRPC (raw stubs) beside the ceiling", HEADERS, [p.row() for p in pairs])
    if workers:
        headers = (
            "case",
            "ceiling case",
            "ceiling jobs/s",
            "Worker jobs/s",
            "ratio",
            "not SUCCEEDED",
            "Worker warnings",
        )
        table("throughput: the Python Worker library (spool.Worker, no-op handler)", headers, workers)
    check_targets(pairs)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases, 8 clients only: under half a minute")
    p.add_argument("--workload", action="append", choices=ceiling.WORKLOADS, help="only these (repeatable)")
    args = p.parse_args(argv)
    run(main(args.quick, args.workload or ceiling.WORKLOADS))


if __name__ == "__main__":
    cli()
