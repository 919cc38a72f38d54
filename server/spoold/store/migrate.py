"""Forward-only migrations, applied in order under an advisory lock and recorded."""

from __future__ import annotations

import logging
from importlib import resources

from spoold.store.database import Connection

log = logging.getLogger(__name__)

# Any stable number works; it only has to differ from the application's own advisory locks.
_LOCK_KEY = 0x53504F4F4C  # "SPOOL"

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS spool;
CREATE TABLE IF NOT EXISTS spool.migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in version order."""
    found = []
    for entry in resources.files("spoold.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def autovacuum_off(conn: Connection) -> bool:
    """True when the server has autovacuum off: the jobs table then bloats without a manual VACUUM."""
    return bool(await conn.fetchval("SELECT current_setting('autovacuum') = 'off'"))


async def migrate(conn: Connection) -> list[str]:
    """Applies the migrations this database lacks; returns their names. Safe to race."""
    applied_now = []
    async with conn.transaction():
        # A migration may rewrite a large table: the pool's statement timeout is for requests.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_BOOKKEEPING)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM spool.migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            log.debug("applying migration %s", name)
            await conn.execute(sql)
            await conn.execute("INSERT INTO spool.migrations (version, name) VALUES ($1, $2)", version, name)
            applied_now.append(name)
    return applied_now
