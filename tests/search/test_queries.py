"""The queries of sql/search.sql prepare against the migrated schema, bare and with every filter,
and the error-text search can use its trigram index (the expression in filters.py matches it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spoold.model import JobFilter, JobState, Order
from spoold.store import filters, queries

Q = queries.load("search.sql")

EVERYTHING = JobFilter(
    queues=("a", "b"),
    states=(JobState.DEAD, JobState.CANCELLED),
    created_after=datetime(2026, 1, 1, tzinfo=UTC),
    created_before=datetime(2026, 2, 1, tzinfo=UTC),
    finished_after=datetime(2026, 1, 1, tzinfo=UTC),
    finished_before=datetime(2026, 2, 1, tzinfo=UTC),
    error_contains="timeout",
    payload_contains='{"order_id": 5512}',
    idempotency_key="k",
    concurrency_key="c",
)


@pytest.mark.parametrize("name", sorted(Q))
async def test_each_query_prepares(db, name: str) -> None:  # type: ignore[no-untyped-def]
    await db.prepare(Q[name])
    if filters.MARKER in Q[name]:
        first = 3 if name == "requeue_matching" else 2
        cond = filters.condition(EVERYTHING, first)
        filters.keyset(cond, Order.NEWEST_FIRST, 10)
        stmt = await db.prepare(cond.apply(Q[name]))
        assert len(stmt.get_parameters()) == first - 1 + len(cond.params)


async def test_error_search_can_use_the_trigram_index(db) -> None:  # type: ignore[no-untyped-def]
    cond = filters.condition(JobFilter(error_contains="timeout"), first=1)
    query = cond.apply("SELECT count(*) FROM spool.jobs j WHERE true /* AND filter */")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = await db.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *cond.params)
    assert "jobs_error_trgm_idx" in plan


def test_like_pattern_escapes_wildcards() -> None:
    assert filters.like_pattern("100%_a\\b") == "%100\\%\\_a\\\\b%"
