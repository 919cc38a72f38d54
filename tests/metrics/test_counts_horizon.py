"""Scheduled jobs far ahead in one count row per queue (migration 0029), and the counts still equal
a scan as those jobs come due: with the counts loop keeping up, and with the loop stopped while
`at` passes its horizon and jobs change meanwhile. Time passes by reading and folding at now() plus
an offset, the database's own clock."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from tests.metrics.test_counts import _same

# 300 jobs over 3 queues, each due at its own second: 30, 90, 600, 10,800 and 172,800 s ahead, plus
# 1 to 60 s; and 3 ready ones.
FILL = """
SELECT spool.enqueue('q' || (g % 3), '{}', now() + make_interval(secs => s + g))
FROM generate_series(1, 60) g, unnest(ARRAY[30, 90, 600, 10800, 172800]) s
UNION ALL
SELECT spool.enqueue('q' || g, '{}', now() - interval '5 seconds') FROM generate_series(0, 2) g
"""


async def _roll_up(db: asyncpg.Connection, at: timedelta) -> None:
    await db.execute("SELECT spool.roll_up_counts(now() + $1::interval)", at)


async def _rows(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM spool.queue_counts"))


async def test_far_scheduled_jobs_take_one_row_per_queue_and_stay_exact_as_they_come_due(
    db: asyncpg.Connection,
) -> None:
    await db.execute(FILL)
    await _same(db)
    await _roll_up(db, timedelta(0))
    first = await _same(db)
    assert [(r["ready"], r["scheduled"]) for r in first] == [(1, 100)] * 3
    # Per second up to two minutes ahead (the 60 jobs due in 31..90 s and 29 of 91..150 s), then one row.
    assert await _rows(db) <= 3 + 90 + 3, "a count row per scheduled second"
    for step in (45, 100, 130, 700, 10_900, 172_900):
        await _roll_up(db, timedelta(seconds=step))
        counted = await _same(db, timedelta(seconds=step))
        assert sum(r["ready"] for r in counted) + sum(r["scheduled"] for r in counted) == 303
        assert await _rows(db) <= 3 * 70, f"{await _rows(db)} count rows at {step} s"


async def test_the_counts_stay_exact_when_the_loop_stops_past_its_horizon(db: asyncpg.Connection) -> None:
    await db.execute(FILL)
    await _roll_up(db, timedelta(0))
    # Nobody folds; `at` passes the horizon (two minutes ahead) while jobs change under it.
    await _same(db, timedelta(seconds=200))
    await db.execute("DELETE FROM spool.jobs WHERE queue = 'q0' AND run_at > now() + interval '2 days'")
    move = "UPDATE spool.jobs SET run_at = now() + $1::interval WHERE queue = $2 AND run_at {} now() + $3::interval"
    await db.execute(move.format(">"), timedelta(seconds=150), "q1", timedelta(days=2))
    await db.execute(move.format("<"), timedelta(days=3), "q2", timedelta(seconds=100))
    await db.execute("SELECT spool.enqueue('q0', '{}', now() + interval '125 seconds')")
    for step in (119, 121, 140, 200, 700):
        await _same(db, timedelta(seconds=step))
    # The loop comes back and splits the range it left. q2: its 60 far jobs, and 24 moved to 3 days ahead.
    await _roll_up(db, timedelta(seconds=200))
    counted = await _same(db, timedelta(seconds=200))
    assert {r["queue"]: r["scheduled"] for r in counted} == {"q0": 40, "q1": 40, "q2": 84}
    await _roll_up(db, timedelta(days=4))
    assert [r["scheduled"] for r in await _same(db, timedelta(days=4))] == [0, 0, 0]


async def test_a_ready_backlog_hours_deep_is_one_row_and_its_oldest_age_is_exact(db: asyncpg.Connection) -> None:
    await db.execute(
        "SELECT spool.enqueue('deep', '{}', now(), (g % 3 * 5 - 5)::smallint) FROM generate_series(3, 200) g"
    )
    # spool.enqueue takes no run_at in the past; as if they had waited that long (3 to 200 minutes):
    await db.execute(
        "UPDATE spool.jobs SET run_at = now() - make_interval(mins => (id - (SELECT min(id) FROM spool.jobs))::int + 3)"
    )
    await _roll_up(db, timedelta(0))
    [counted] = await _same(db)  # the age too: from jobs_pending_idx, across the three priorities
    assert counted["ready"] == 198 and counted["lag"] >= timedelta(minutes=200)
    assert await _rows(db) == 1
    await db.execute("DELETE FROM spool.jobs WHERE run_at < now() - interval '150 minutes' AND priority = 5")
    await _same(db, timedelta(seconds=30))
