"""Backlog: does claim+ack slow down when many jobs are already pending? A steady produce+consume
run (8 clients) with 0, 100,000 and 1,000,000 ready jobs in the same queue (filled with
INSERT ... SELECT generate_series), through gRPC and on the SQL ceiling. The reference for each
level is the same path's figure at 0 pending, measured in the same run on the same server: in the
full run, once before the backlog is filled and once after it is deleted again, and the two
averaged, so that a machine growing slower or faster during the run does not pass for the backlog.

    python -m bench.backlog [--quick]      (--quick: 0 and 100,000, the reference measured once)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import asyncpg

from bench import workloads
from bench.ceiling import sql_drivers
from bench.drivers import Driver
from bench.report import ratio, table, target
from bench.scratch import QUEUE, fill, run, scratch_database, settle, spoold
from bench.throughput import grpc_drivers

CLIENTS = 8


async def pending(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM spool.jobs WHERE state = 'pending' AND queue = $1", QUEUE)
    return count


async def empty(conn: asyncpg.Connection) -> None:
    """Deletes the backlog, then vacuums and checkpoints, as fill does after adding one."""
    await conn.execute("DELETE FROM spool.jobs WHERE state = 'pending' AND queue = $1", QUEUE)
    await settle(conn)


async def measure(levels: Sequence[int], seconds: float, again: bool) -> list[tuple[object, ...]]:
    """Per level: SQL batch 100, gRPC 1 job/RPC and gRPC batch 100 in jobs/s, each beside its rate at
    0 pending; with `again`, 0 pending is measured a second time at the end and the two averaged."""
    results: list[tuple[str, list[float]]] = []
    async with scratch_database() as url, spoold(url) as server, sql_drivers(url, CLIENTS) as sql:
        admin = await asyncpg.connect(url)
        try:
            async with grpc_drivers(server, False, CLIENTS) as single, grpc_drivers(server, True, CLIENTS) as batched:
                paths: list[tuple[Sequence[Driver], int]] = [(sql, 100), (single, 1), (batched, 100)]

                async def cell(label: str) -> None:
                    rates = [(await workloads.steady(drivers, batch, seconds)).rate for drivers, batch in paths]
                    results.append((label, rates))

                for level in levels:
                    await fill(admin, level - await pending(admin))
                    await cell(f"{level:,} pending")
                if again:
                    await empty(admin)
                    await cell("0 pending, again")
        finally:
            await admin.close()
    zeros = [rates for label, rates in results if label.startswith("0 pending")]
    base = [sum(column) / len(column) for column in zip(*zeros, strict=True)]
    rows: list[tuple[object, ...]] = []
    for label, rates in results:
        row: list[object] = [label]
        for rate, ref in zip(rates, base, strict=True):
            row += [rate, ratio(rate, ref)]
        rows.append(tuple(row))
    return rows


async def main(quick: bool) -> None:
    levels = (0, 100_000) if quick else (0, 100_000, 1_000_000)
    rows = await measure(levels, 1.0 if quick else 5.0, again=not quick)
    headers = ("backlog", "SQL batch 100", "vs 0", "gRPC 1/RPC", "vs 0", "gRPC batch 100", "vs 0")
    reference = "0 pending" if quick else "the mean of both 0-pending rows"
    table(f"backlog: steady produce+consume, {CLIENTS} clients, jobs/s; vs 0 = vs {reference}", headers, rows)
    last = rows[len(levels) - 1]
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
