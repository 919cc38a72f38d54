"""The database's own ceiling: Spool's SQL (insert_jobs, spool.claim_slots, ack_many from
server/spoold/store/sql/jobs.sql) driven over asyncpg with no gRPC, one job per transaction and in
batches of 100, at 1 and 8 connections.

    python -m bench.ceiling [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from bench import workloads
from bench.cpu import Meter
from bench.drivers import Driver, SqlDriver
from bench.report import table
from bench.scratch import fill, reset, run, scratch_database
from bench.workloads import Result

WORKLOADS = ("enqueue", "drain", "steady")
BATCHES = (1, 100)
CONNECTIONS = (1, 8)


@dataclass(frozen=True)
class Params:
    """How much work each case does: small enough for --quick to finish in well under a minute."""

    jobs_single: int  # jobs per enqueue or drain case, one job per call
    jobs_batched: int  # the same, in batches of 100
    steady_seconds: float

    @classmethod
    def of(cls, quick: bool) -> Params:
        return cls(1_200, 15_000, 1.0) if quick else cls(6_000, 60_000, 4.0)

    def split(self, rounds: int) -> Params:
        """The same amount of work in `rounds` equal parts."""
        return Params(self.jobs_single // rounds, self.jobs_batched // rounds, self.steady_seconds / rounds)

    def jobs(self, batch: int) -> int:
        return self.jobs_single if batch == 1 else self.jobs_batched


@dataclass(frozen=True)
class Case:
    workload: str
    batch: int
    connections: int
    # Each ack claims the next jobs: one Ack (or AckBatch) with `next` per round through spoold,
    # where the ceiling runs the same two statements as unchained.
    chained: bool = False

    @property
    def label(self) -> str:
        how = "1 job/call" if self.batch == 1 else f"batch {self.batch}"
        return f"{self.workload:<7} {how:<10} x{self.connections}{' +next' if self.chained else ''}"


def cases(workloads_: Sequence[str] = WORKLOADS, connections: Sequence[int] = CONNECTIONS) -> list[Case]:
    return [Case(w, b, c) for w in workloads_ for b in BATCHES for c in connections]


# The chained cases worth a row (the Worker at concurrency 1 shows the chained drain on one client).
CHAINED = tuple(Case(w, b, c, chained=True) for w, b, c in (("drain", 1, 8), ("steady", 1, 8), ("drain", 100, 8)))


def chained_cases(workloads_: Sequence[str] = WORKLOADS) -> list[Case]:
    return [c for c in CHAINED if c.workload in workloads_]


async def run_case(
    case: Case, params: Params, admin: asyncpg.Connection, drivers: Sequence[Driver], meter: Meter
) -> Result:
    """Runs one case on fresh tables with the first `case.connections` drivers (SQL or gRPC)."""
    await reset(admin)
    use = drivers[: case.connections]
    if case.workload == "enqueue":
        return await workloads.enqueue(use, case.batch, params.jobs(case.batch), meter)
    if case.workload == "drain":
        await fill(admin, params.jobs(case.batch))
        return await workloads.drain(use, case.batch, meter, case.chained)
    return await workloads.steady(use, case.batch, params.steady_seconds, meter, case.chained)


@contextlib.asynccontextmanager
async def sql_drivers(db_url: str, count: int = max(CONNECTIONS)) -> AsyncIterator[list[SqlDriver]]:
    conns = [await asyncpg.connect(db_url, server_settings={"jit": "off"}) for _ in range(count)]
    try:
        yield [SqlDriver(c) for c in conns]
    finally:
        for c in conns:
            await c.close()


async def main(quick: bool) -> None:
    params = Params.of(quick)
    rows = []
    async with scratch_database() as url, sql_drivers(url) as drivers:
        admin = await asyncpg.connect(url)
        try:
            meter = Meter(admin)
            for case in cases():
                result = await run_case(case, params, admin, drivers, meter)
                cpu = result.cpu.per_job_ms(result.jobs) if result.cpu else "-"
                rows.append((case.label, result.jobs, result.rate, cpu))
        finally:
            await admin.close()
    table("ceiling: Spool's SQL over asyncpg, no gRPC", ("case", "jobs", "jobs/s", "CPU ms/job bench/-/pg"), rows)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases, for a run under a minute")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
