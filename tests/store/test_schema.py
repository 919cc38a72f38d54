"""The checked-in schema snapshot (store/schema.sql) matches what the migrations build, so every
migration's effect is reviewed as a diff of one readable file."""

from __future__ import annotations

import difflib
from importlib import resources

import asyncpg
import pytest

from spoold.store.snapshot import dump, fresh_dump
from tests.conftest import fresh_database

REGENERATE = "run `python -m spoold.store.snapshot > server/spoold/store/schema.sql`"


def checked_in() -> str:
    return resources.files("spoold.store").joinpath("schema.sql").read_text()


async def test_snapshot_matches_a_freshly_migrated_database(admin_url: str, template_db: str) -> None:
    async with fresh_database(admin_url, template_db) as url:
        conn = await asyncpg.connect(url)
        try:
            actual = await dump(conn)
        finally:
            await conn.close()
    expected = checked_in()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True), "schema.sql", "migrated"
            )
        )
        pytest.fail(f"the schema snapshot is out of date: {REGENERATE}\n{diff}", pytrace=False)


async def test_the_regenerate_command_builds_the_same_text(admin_url: str) -> None:
    # What the command prints (a scratch database migrated from nothing) is what the test compares.
    assert await fresh_dump(admin_url) == checked_in(), REGENERATE


async def test_snapshot_sees_a_schema_change(db: asyncpg.Connection) -> None:
    before = await dump(db)
    await db.execute("CREATE INDEX jobs_probe_idx ON spool.jobs (created_at)")
    after = await dump(db)
    added = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line.startswith("+ ")]
    assert added == ["+     index jobs_probe_idx: CREATE INDEX jobs_probe_idx ON spool.jobs USING btree (created_at)"]
