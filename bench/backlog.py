"""Backlog: does claim+ack slow down when many jobs are already pending? A steady produce+consume
run (8 clients) with 0, 100,000 and 1,000,000 ready jobs in the same queue (filled with
INSERT ... SELECT generate_series), through gRPC and on the SQL ceiling. The reference for each
level is the same path's figure at 0 pending, measured in the same run on the same server.

    python -m bench.backlog [--quick]      (--quick: 0 and 100,000)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import asyncpg

from bench import workloads
from bench.ceiling import sql_drivers
from bench.drivers import Driver
from bench.report import ratio, table, target
from bench.scratch import QUEUE, fill, run, scratch_database, spoold
from bench.throughput import grpc_drivers

CLIENTS = 8


async def pending(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'pending' AND queue = $1", QUEUE)
    return count


async def measure(levels: Sequence[int], seconds: float) -> list[tuple[object, ...]]:
    """Per level: SQL batch 100, gRPC 1 job/RPC and gRPC batch 100 in jobs/s, each beside its rate at 0."""
    results: list[tuple[int, list[float]]] = []
    async with scratch_database() as url, spoold(url) as server, sql_drivers(url, CLIENTS) as sql:
        admin = await asyncpg.connect(url)
        try:
            async with grpc_drivers(server, False, CLIENTS) as single, grpc_drivers(server, True, CLIENTS) as batched:
                paths: list[tuple[Sequence[Driver], int]] = [(sql, 100), (single, 1), (batched, 100)]
                for level in levels:
                    await fill(admin, level - await pending(admin))
                    rates = []
                    for drivers, batch in paths:
                        result = await workloads.steady(drivers, batch, seconds)
                        rates.append(result.rate)
                    results.append((level, rates))
        finally:
            await admin.close()
    base = results[0][1]
    rows: list[tuple[object, ...]] = []
    for level, rates in results:
        row: list[object] = [f"{level:,} pending"]
        for rate, ref in zip(rates, base, strict=True):
            row += [rate, ratio(rate, ref)]
        rows.append(tuple(row))
    return rows


async def main(quick: bool) -> None:
    levels = (0, 100_000) if quick else (0, 100_000, 1_000_000)
    rows = await measure(levels, 1.0 if quick else 5.0)
    headers = ("backlog", "SQL batch 100", "vs 0", "gRPC 1/RPC", "vs 0", "gRPC batch 100", "vs 0")
    table(f"backlog: steady produce+consume, {CLIENTS} clients, jobs/s", headers, rows)
    last = rows[-1]
    for name, col in (("1 job per RPC", 4), ("batched", 6)):
        share = str(last[col])
        met = share != "-" and float(share.rstrip("%")) >= 90
        target(f"throughput at {last[0]} vs at 0 ({name})", share, ">= 90%", met)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.backlog", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="0 and 100,000 pending only, shorter runs")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
