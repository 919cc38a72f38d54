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
