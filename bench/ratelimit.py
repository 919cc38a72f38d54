"""The claim's cost with and without rate limits, in one run: `spool.claim_slots` as it was before
rate limits (the latest migration's before 0015, installed beside it as `spool.claim_slots_before`), as it is now
with no limit, and now with a queue limit or a key limit on every job (limits too high to hold
anything back: what the accounting costs), plus a claim on a queue whose window is shut.

    .venv/bin/python -m bench.ratelimit --quick      # about a minute
    .venv/bin/python -m bench.ratelimit              # larger cases, 3 rounds

Each case drains a fresh backlog with claims of 1 or 100 jobs over 1 or 4 connections (SQL over
asyncpg, no gRPC, no acks, synchronous_commit off: the claim alone, not the WAL flush). Cases run
in rounds, "before" and "now" alternating in order, and the figure is the median of the rounds;
the ratio to "before" is what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from bench.report import ratio, table
from bench.scratch import fill, reset, run, scratch_database
from spoold.store.migrate import migrations

QUEUE = "bench"
_CLAIM = "SELECT * FROM {fn}($1::text[], $2::text[], $3::interval[])"


_DEFINITION = re.compile(r"CREATE OR REPLACE FUNCTION spool\.claim_slots\(.*?\n\$\$;", re.DOTALL)


def _before_claim() -> str:
    """The claim as the last migration before rate limits (0015) left it, as spool.claim_slots_before."""
    found = [m.group(0) for version, _, text in migrations() if version < 15 for m in _DEFINITION.finditer(text)]
    assert found, "no migration before 0015 defines spool.claim_slots"
    return found[-1].replace("spool.claim_slots(", "spool.claim_slots_before(", 1)


@dataclass(frozen=True)
class Case:
    label: str
    fn: str  # the claim function
    setup: str  # SQL run after the backlog is filled ("" for none)


CASES = (
    Case("before rate limits", "spool.claim_slots_before", ""),
    Case("now, no rate limit", "spool.claim_slots", ""),
    Case(
        "now, queue limit (never shut)",
        "spool.claim_slots",
        "INSERT INTO spool.queues (name, rate_limit, rate_interval, rate_burst)"
        " VALUES ('bench', 1000000, interval '1 second', 1000000)",
    ),
    Case(
        "now, key limit on every job (16 keys)",
        "spool.claim_slots",
        "UPDATE spool.jobs SET rate_key = 'k' || (id % 16), rate_limit = 1000000,"
        " rate_interval = interval '1 second', rate_burst = 1000000",
    ),
)


async def _claim_all(conns: Sequence[asyncpg.Connection], fn: str, batch: int, total: int) -> tuple[int, float]:
    """Claims until `total` jobs are claimed or the queue gives none; returns (jobs, seconds)."""
    query = _CLAIM.format(fn=fn)
    workers, leases = ["w"] * batch, [None] * batch
    claimed = 0

    async def one(conn: asyncpg.Connection) -> None:
        nonlocal claimed
        while claimed < total:
            rows = [r for r in await conn.fetch(query, [QUEUE], workers, leases) if r["id"] is not None]
            if not rows:
                return
            claimed += len(rows)

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in conns))
    return claimed, time.perf_counter() - started


async def _run(admin: asyncpg.Connection, conns: Sequence[asyncpg.Connection], case: Case, batch: int, n: int) -> float:
    await reset(admin)
    await admin.execute("DELETE FROM spool.queues; DELETE FROM spool.rate_keys")
    await fill(admin, n)
    if case.setup:
        await admin.execute(case.setup)
        await admin.execute("VACUUM (ANALYZE) spool.jobs")
    jobs, seconds = await _claim_all(conns, case.fn, batch, n)
    assert jobs == n, f"{case.label}: claimed {jobs} of {n}"
    return jobs / seconds


async def _shut_window(admin: asyncpg.Connection, conn: asyncpg.Connection, backlog: int, tries: int) -> float:
    """Mean ms of a claim on a queue whose window is shut, with `backlog` jobs held back."""
    await reset(admin)
    await fill(admin, backlog)
    await admin.execute(
        "DELETE FROM spool.queues; INSERT INTO spool.queues (name, rate_limit, rate_interval, rate_burst,"
        " rate_tat) VALUES ('bench', 1, interval '1 day', 1, now() + interval '1 day')"
    )
    query = _CLAIM.format(fn="spool.claim_slots")
    started = time.perf_counter()
    for _ in range(tries):
        rows = await conn.fetch(query, [QUEUE], ["w"] * 10, [None] * 10)
        assert all(r["id"] is None for r in rows)
    return (time.perf_counter() - started) * 1000 / tries


async def main(quick: bool) -> None:
    rounds = 2 if quick else 3
    sizes = {1: 1500 if quick else 10_000, 100: 20_000 if quick else 100_000}
    async with scratch_database() as url:
        admin = await asyncpg.connect(url)
        # Without waiting for the WAL flush of each claim's commit: its fsync, which no claim change
        # alters, would otherwise swamp the claim's own cost on a shared machine.
        quiet = {"jit": "off", "synchronous_commit": "off"}
        conns = [await asyncpg.connect(url, server_settings=quiet) for _ in range(4)]
        try:
            await admin.execute(_before_claim())
            rows = []
            for batch, n in sizes.items():
                for width in (1, 4):
                    rates: dict[str, list[float]] = {c.label: [] for c in CASES}
                    for r in range(rounds):
                        order = CASES if r % 2 == 0 else tuple(reversed(CASES))
                        for case in order:
                            rates[case.label].append(await _run(admin, conns[:width], case, batch, n))
                    before = statistics.median(rates[CASES[0].label])
                    for case in CASES:
                        rate = statistics.median(rates[case.label])
                        rows.append((f"{case.label}, batch {batch}, {width} conn", n, rate, ratio(rate, before)))
            table(
                "claim jobs/s (median of rounds), against the claim before rate limits",
                ("case", "jobs", "jobs/s", "vs before"),
                rows,
            )
            shut = await _shut_window(admin, conns[0], 2_000 if quick else 20_000, 200 if quick else 1000)
            table("a claim on a shut window", ("case", "ms per claim"), [("10 slots, backlog held back", shut)])
        finally:
            for c in (admin, *conns):
                await c.close()


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases, 2 rounds: about a minute")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
