"""`python -m bench.payload_copy [--rows N]`: what keeping each JSON payload's bytes as sent, beside
the jsonb that search needs, would cost. JSON payloads are stored as jsonb only, and a worker
receives jsonb's text (docs/decisions.md, "Payloads"); the alternative stores the sent bytes too.

Set-based SQL on a scratch database, two tables shaped like spool.jobs (the same columns, one with
an extra bytea for the sent bytes): insert N jobs with a typical 120-byte payload, then read every
payload back as a claim would (the jsonb printed, or the bytes as they are), in alternating rounds,
best of ROUNDS; and both tables' sizes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import asyncpg

from bench.report import ratio, table
from bench.scratch import run, scratch_database, settle

ROUNDS = 3
PAYLOAD = (
    '{"to": "ada@example.com", "template": "welcome", "user_id": 123456, "locale": "en-GB", "vars": {"name": "Ada"}}'
)

_TABLES = """
CREATE TABLE spool.jobs_jsonb (LIKE spool.jobs INCLUDING DEFAULTS) WITH (fillfactor = 70);
CREATE TABLE spool.jobs_both (LIKE spool.jobs INCLUDING DEFAULTS, payload_sent bytea) WITH (fillfactor = 70);
"""
_INSERT = """
INSERT INTO spool.{table} (id, queue, payload_json, {extra} content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration)
SELECT g, 'q', $1::text::jsonb, {value} 'application/json', 1, 'exponential', interval '1 second',
    interval '5 minutes', 2, true, interval '30 seconds'
FROM generate_series(1, $2::integer) AS g
"""
_READ = {
    "jobs_jsonb": "SELECT payload_json::text FROM spool.jobs_jsonb",
    "jobs_both": "SELECT payload_sent FROM spool.jobs_both",
}


async def one_round(conn: asyncpg.Connection, name: str, rows: int) -> tuple[float, float, int]:
    """Insert rows/s, read rows/s (payloads as a worker gets them), and the table's size in bytes."""
    await conn.execute(f"TRUNCATE spool.{name}")
    await settle(conn)
    extra, value = ("payload_sent,", "convert_to($1, 'UTF8'),") if name == "jobs_both" else ("", "")
    started = time.perf_counter()
    await conn.execute(_INSERT.format(table=name, extra=extra, value=value), PAYLOAD, rows)
    insert = rows / (time.perf_counter() - started)
    await conn.execute(f"VACUUM ANALYZE spool.{name}")
    started = time.perf_counter()
    await conn.fetch(_READ[name])
    read = rows / (time.perf_counter() - started)
    size: int = await conn.fetchval(f"SELECT pg_total_relation_size('spool.{name}')")
    return insert, read, size


async def measure(rows: int) -> None:
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_TABLES)
            best: dict[str, tuple[float, float, int]] = {}
            for _ in range(ROUNDS):
                for name in ("jobs_jsonb", "jobs_both"):
                    got = await one_round(conn, name, rows)
                    old = best.get(name, got)
                    best[name] = (max(old[0], got[0]), max(old[1], got[1]), got[2])
        finally:
            await conn.close()
    base = best["jobs_jsonb"]
    table(
        f"JSON payloads as jsonb only, or jsonb and the bytes as sent: {rows:,} jobs, {len(PAYLOAD)}-byte payload",
        ("stored", "insert rows/s", "%", "read rows/s", "%", "table MB", "%"),
        [
            (label, ins, ratio(ins, base[0]), rd, ratio(rd, base[1]), size / 1048576, ratio(size, base[2]))
            for label, (ins, rd, size) in (("jsonb (as shipped)", base), ("jsonb + bytes as sent", best["jobs_both"]))
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.payload_copy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="jobs per table (default 200,000)")
    parser.add_argument("--quick", action="store_true", help="50,000 jobs")
    args = parser.parse_args(argv)
    run(measure(50_000 if args.quick else args.rows))


if __name__ == "__main__":
    main()
