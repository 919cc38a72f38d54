"""Every named query of store/sql/*.sql is prepared against the migrated schema, so a typo, a renamed
column or a parameter of the wrong type fails here rather than at the first request that runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from spoold.store.queries import all_queries
from tests.conftest import fresh_database

QUERIES = all_queries()


@pytest.fixture(scope="module")
async def conn(admin_url: str, template_db: str) -> AsyncIterator[asyncpg.Connection]:
    """One database for all: preparing a statement changes nothing."""
    async with fresh_database(admin_url, template_db) as url:
        c = await asyncpg.connect(url)
        try:
            yield c
        finally:
            await c.close()


def test_queries_are_found() -> None:
    assert "jobs.sql:claim_slots" in QUERIES
    assert all(sql.strip() for sql in QUERIES.values())


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_query_prepares(conn: asyncpg.Connection, name: str) -> None:
    statement = await conn.prepare(QUERIES[name])
    # asyncpg has inferred a type for every parameter, so $1..$n are numbered without gaps.
    assert all(t.name for t in statement.get_parameters())


# The statements that find a held lease by job id, with the arguments of one call for the ids given.
LEASE_LOOKUPS = {
    "heartbeat": lambda ids, tokens: [ids[0], tokens[0], None, False, None],
    "heartbeat_many": lambda ids, tokens: [ids, tokens, [None] * len(ids), [False] * len(ids), [None] * len(ids)],
    "ack_many": lambda ids, tokens: [ids, tokens, [None] * len(ids), [None] * len(ids)],
    "ack_many_ids": lambda ids, tokens: [ids, tokens, [None] * len(ids), [None] * len(ids)],
    "nack": lambda ids, tokens: [ids[0], tokens[0], True, None, "E", "m", None, False, None, False, 100],
}


async def test_held_leases_are_found_by_primary_key(admin_url: str, template_db: str) -> None:
    """The statistics were taken when no job ran, as after a quiet night's vacuum; 500 jobs run now.
    Finding a lease must still go by primary key, not read every running job's index entry per id."""
    async with fresh_database(admin_url, template_db) as url:
        c = await asyncpg.connect(url)
        try:
            await c.execute("SELECT spool.enqueue('q', jsonb_build_object('n', g)) FROM generate_series(1, 2000) g")
            await c.execute("ANALYZE spool.jobs")
            held = await c.fetch("SELECT id, lease_token FROM spool.claim(ARRAY['q'], 500, NULL, 'w')")
            ids, tokens = [r["id"] for r in held], [r["lease_token"] for r in held]
            for name, args in LEASE_LOOKUPS.items():
                plan = await c.fetchval(f"EXPLAIN (FORMAT JSON) {QUERIES['jobs.sql:' + name]}", *args(ids, tokens))
                assert "jobs_pkey" in plan, name
                assert "jobs_running_idx" not in plan, name
        finally:
            await c.close()
