"""The connections searches run on. ListJobs, Requeue by filter and queue stats can be made to cost
seconds (a long error_contains, a JSON containment against a large payload, a whole history to
count), so they take their connections from a small pool of their own, whose statements have a
timeout of their own: however many searches arrive, the hot path (Enqueue, Lease, Heartbeat, Ack)
keeps every connection of the main pool, and a search that runs too long, or finds every search
connection busy, is answered as such rather than as the database being unavailable."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg

from spoold.errors import SearchesBusy, SearchTimeout, Unavailable
from spoold.store.database import Connection, Pool, PoolExhausted, create_pool, translated


class SearchPool:
    def __init__(self, pool: Pool, timeout: timedelta, wait: timedelta) -> None:
        self.pool = pool
        self._timeout = timeout
        self._wait = wait

    @classmethod
    async def create(cls, dsn: str, size: int, statement_timeout: timedelta, wait: timedelta) -> SearchPool:
        # No connection is opened before the first search: a process that serves none holds none.
        pool = await create_pool(dsn, 0, size, statement_timeout=statement_timeout, acquire_timeout=wait)
        return cls(pool, statement_timeout, wait)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A search connection; the driver's errors translated, a timeout and a wait named as such."""
        try:
            with translated():
                async with self.pool.acquire() as conn:
                    yield conn
        except PoolExhausted as exc:
            wait = self._wait.total_seconds()
            raise SearchesBusy(
                f"every search connection stayed busy for {wait:g}s (SPOOL_SEARCH_WAIT); retry later"
            ) from exc
        except Unavailable as exc:
            if not _timed_out(exc):
                raise
            timeout = self._timeout.total_seconds()
            raise SearchTimeout(
                f"the search ran past {timeout:g}s (SPOOL_SEARCH_TIMEOUT) and was cancelled; narrow the "
                "filter (a queue, a state, a time range)"
            ) from exc

    async def close(self) -> None:
        await self.pool.close()


def _timed_out(exc: BaseException) -> bool:
    """PostgreSQL's statement timeout (query_canceled), or asyncpg's own timer a little after it
    (a statement the server does not interrupt at once, such as one jsonb containment)."""
    return isinstance(exc.__cause__, asyncpg.QueryCanceledError | TimeoutError)
