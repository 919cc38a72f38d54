"""Fixtures for the fault tests: a TCP proxy in front of the test database, and spoold behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.faults.proxy import FaultProxy, fault_proxy


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[FaultProxy]:
    if urlsplit(db_url).port is None:
        pytest.skip("the fault proxy needs PostgreSQL on TCP (SPOOL_TEST_DATABASE_URL)")
    async with fault_proxy(db_url) as p:
        yield p


async def terminate(db: asyncpg.Connection, application_name: str = "spoold") -> int:
    """pg_terminate_backend on this database's connections of that name; how many."""
    found = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = $1",
        application_name,
    )
    return int(found)


async def kill_held_connection(proxy: FaultProxy, db: asyncpg.Connection) -> None:
    """Terminates spoold's pooled connections, whose sockets the proxy keeps open: each then holds
    the backend's FATAL error, unread until the client next uses it, and no end of stream."""
    proxy.hold()
    assert await terminate(db) >= 1
    await asyncio.wait_for(proxy.server_closed.wait(), 10)
    # The error is in the client's socket; a few turns of the event loop and asyncpg has read it.
    for _ in range(5):
        await asyncio.sleep(0)
