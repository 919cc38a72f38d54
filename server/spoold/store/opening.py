"""Opening the database at start-up: the pool, then the migrations, tried again with backoff while
the database is down or unreachable (a restart, a failover, a container started before it), up to
`database_wait`. An error that waiting cannot mend (a wrong password, a missing database, a failed
migration) ends start-up at once."""

from __future__ import annotations

import asyncio
import logging
import random

from spoold.config import Settings
from spoold.store.database import CONNECT_ERRORS, Pool, create_pool, redacted, transient, unreachable
from spoold.store.migrate import autovacuum_off, migrate

log = logging.getLogger(__name__)

_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0


async def open_database(dsn: str, s: Settings) -> tuple[Pool, list[str]]:
    """The pool, and the migrations it applied; StartupError once `database_wait` has passed."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + s.database_wait.total_seconds()
    failures = 0
    while True:
        pool: Pool | None = None
        try:
            pool = await create_pool(
                dsn,
                s.pool_min_size,
                s.pool_max_size,
                statement_timeout=s.statement_timeout,
                acquire_timeout=s.pool_acquire_timeout,
            )
            return pool, await _migrate(pool)
        except Exception as exc:
            if pool is not None:
                pool.terminate()
            failures += 1
            delay = random.uniform(0.5, 1) * min(_MAX_DELAY, _FIRST_DELAY * 2**failures)
            if not transient(exc) or loop.time() >= give_up:
                if isinstance(exc, CONNECT_ERRORS):
                    raise unreachable(dsn, exc) from exc
                raise
            log.warning(
                "database %s not reachable yet (%s: %s); retrying in %.1fs, health NOT_SERVING meanwhile",
                redacted(dsn),
                type(exc).__name__,
                str(exc)[:200],
                delay,
            )
            await asyncio.sleep(min(delay, give_up - loop.time()))  # one last try at the deadline


async def _migrate(pool: Pool) -> list[str]:
    async with pool.acquire() as conn:
        applied = await migrate(conn)
        if await autovacuum_off(conn):
            log.warning(
                "autovacuum is off on this PostgreSQL server: spool.jobs will bloat unless it is vacuumed "
                "by hand (docs/storage.md)"
            )
    if applied:
        log.info("database migrated: %d migration(s) applied, up to %s", len(applied), applied[-1])
    return applied
