"""Upgrading a database that the unvalidated spool.enqueue() of earlier versions wrote into: the
migration that adds the CHECK constraints repairs such rows first, so it never fails and a claim of
a repaired row never trips a constraint."""

from __future__ import annotations

import uuid

import asyncpg

from spoold.store.migrate import migrate, migrations
from tests.conftest import connected, with_database

BEFORE_HARDENING = 8


async def migrate_until(conn: asyncpg.Connection, last: int) -> None:
    """What migrate() did when `last` was the newest migration."""
    async with conn.transaction():
        await conn.execute(
            "CREATE SCHEMA spool; CREATE TABLE spool.migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version <= last:
                await conn.execute(sql)
                await conn.execute("INSERT INTO spool.migrations (version, name) VALUES ($1, $2)", version, name)


async def test_rows_the_old_enqueue_let_in_are_repaired(admin_url: str) -> None:
    name = f"spool_upgrade_{uuid.uuid4().hex[:10]}"
    async with connected(admin_url) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            async with connected(with_database(admin_url, name)) as conn:
                await migrate_until(conn, BEFORE_HARDENING)
                old = {
                    "number": await conn.fetchval(
                        """SELECT spool.enqueue('q', '{}', headers => '{"retries": 3, "t": "x"}')"""
                    ),
                    "array": await conn.fetchval("""SELECT spool.enqueue('q', '{}', headers => '["a"]')"""),
                    "fine": await conn.fetchval("""SELECT spool.enqueue('q', '{}', headers => '{"t": "x"}')"""),
                }
                assert (await migrate(conn))[0] == "0009_hardening.sql"
                rows = dict(await conn.fetch("SELECT id, headers::text FROM spool.jobs"))
                assert rows[old["number"]] == '{"t": "x", "retries": "3"}'
                assert rows[old["array"]] is None
                assert rows[old["fine"]] == '{"t": "x"}'
                # Every row now satisfies the constraint, so claiming them all works.
                claimed = await conn.fetch("SELECT id FROM spool.claim(ARRAY['q'], 10, NULL, 'w')")
                assert len(claimed) == 3
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
