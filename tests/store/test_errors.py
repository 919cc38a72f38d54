"""Driver errors become domain errors: a real deadlock is a retryable Conflict, not INTERNAL."""

from __future__ import annotations

import asyncio

import asyncpg

from spoold.errors import Conflict
from spoold.store.database import translated


async def _lock_in_order(conn: asyncpg.Connection, first: int, second: int, both_hold_first: asyncio.Barrier) -> None:
    with translated():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", first)
            await both_hold_first.wait()
            await conn.execute("SELECT pg_advisory_xact_lock($1)", second)


async def test_a_deadlock_is_a_retryable_conflict(db_url: str) -> None:
    a = await asyncpg.connect(db_url, server_settings={"deadlock_timeout": "50ms"})
    b = await asyncpg.connect(db_url, server_settings={"deadlock_timeout": "50ms"})
    try:
        barrier = asyncio.Barrier(2)
        results = await asyncio.wait_for(
            asyncio.gather(_lock_in_order(a, 1, 2, barrier), _lock_in_order(b, 2, 1, barrier), return_exceptions=True),
            timeout=30,
        )
    finally:
        await a.close()
        await b.close()
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1, results
    assert conflicts[0].reason == "TRANSIENT_CONFLICT"
    # The other transaction got both locks and committed.
    assert [r for r in results if r is not None and not isinstance(r, Conflict)] == []
