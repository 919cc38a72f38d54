"""Listing by a rare state, across queues or in one, reads that state's index in id order instead of
walking the primary key past the whole history, even in a prepared statement's generic plan; and a
search planned for its values, as the store plans every search, lists one queue's RUNNING jobs
from the running rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from spoold.model import JobFilter, JobState
from spoold.store import filters
from spoold.store.search import _CUSTOM_PLANS, Q
from tests.conftest import connected, fresh_database

# 30,000 jobs in 10 queues: SUCCEEDED but for 30 old DEAD and 10 old CANCELLED in queues 0 to 4,
# and 300 RUNNING.
HISTORY = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind, backoff_initial,
    backoff_max, backoff_multiplier, backoff_jitter, lease_duration, lease_token, started_at, lease_expires_at,
    finished_at)
SELECT 'queue-' || (g % 10), s.state, '{}', 'application/json', 1, 'fixed', '1s', '1s', 1, false, '30s',
    CASE WHEN s.state = 'running' THEN g END, CASE WHEN s.state = 'running' THEN now() END,
    CASE WHEN s.state = 'running' THEN now() + interval '1 hour' END,
    CASE WHEN s.state <> 'running' THEN now() END
FROM generate_series(1, 30000) AS g
CROSS JOIN LATERAL (SELECT CASE
    WHEN g % 100 = 7 THEN 'running'
    WHEN g < 1000 AND g % 30 = 1 THEN 'dead'
    WHEN g < 1000 AND g % 100 = 3 THEN 'cancelled'
    ELSE 'succeeded' END::spool.job_state AS state) AS s
"""


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def plan_of(db: asyncpg.Connection, f: JobFilter) -> list[dict[str, Any]]:
    cond = filters.condition(f, first=2)
    found = await db.fetchval("EXPLAIN (FORMAT JSON) " + cond.apply(Q["list_newest"]), 51, *cond.params)
    return list(nodes(json.loads(found)[0]["Plan"]))


@pytest.fixture(scope="module")
async def history(admin_url: str, template_db: str) -> AsyncIterator[asyncpg.Connection]:
    """One database with the history for the module: the tests only plan, they write nothing."""
    async with fresh_database(admin_url, template_db) as url, connected(url) as db:
        await db.execute(HISTORY)
        await db.execute("ANALYZE spool.jobs")
        yield db


@pytest.mark.parametrize(
    ("f", "index"),
    [
        (JobFilter(states=(JobState.DEAD,)), "jobs_dead_idx"),
        (JobFilter(states=(JobState.DEAD,), queues=("queue-1",)), "jobs_dead_idx"),
        (JobFilter(states=(JobState.DEAD,), queues=("queue-7",)), "jobs_dead_idx"),
        (JobFilter(states=(JobState.CANCELLED,)), "jobs_cancelled_idx"),
        (JobFilter(states=(JobState.CANCELLED,), queues=("queue-3",)), "jobs_cancelled_idx"),
    ],
    ids=["dead", "queue+dead", "queue+dead-none", "cancelled", "queue+cancelled"],
)
async def test_a_rare_state_is_listed_from_its_index_in_any_plan(
    history: asyncpg.Connection, f: JobFilter, index: str
) -> None:
    for mode in ("force_generic_plan", "force_custom_plan"):
        async with history.transaction():
            await history.execute(f"SET LOCAL plan_cache_mode = {mode}")
            plan = await plan_of(history, f)
        # The state's own index; or, for a queue with a few rows in that state, the finished rows
        # of that queue and state (jobs_finished_idx), a handful to sort.
        used = {n["Index Name"] for n in plan if "Index Name" in n}
        assert used and used <= {index, "jobs_finished_idx"}, (mode, plan)
        assert not any(n["Node Type"] == "Seq Scan" for n in plan), (mode, plan)


async def test_one_queues_running_jobs_come_from_the_running_rows(history: asyncpg.Connection) -> None:
    async with history.transaction():
        await history.execute(_CUSTOM_PLANS)
        plan = await plan_of(history, JobFilter(states=(JobState.RUNNING,), queues=("queue-7",)))
    assert "jobs_running_idx" in [n.get("Index Name") for n in plan], plan
    assert not any(n.get("Index Name") == "jobs_pkey" or n["Node Type"] == "Seq Scan" for n in plan), plan
