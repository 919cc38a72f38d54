"""spool.enqueue() applies the server's rules (at its default limits) before it inserts anything, and
the table's CHECK constraints refuse what the API could not convert, whoever writes the row."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from spoold.config import Limits
from tests.api.support import count
from tests.conftest import connected, fresh_database

LIMITS = Limits()
INVALID = "22023"  # invalid_parameter_value
TOO_LARGE = "54000"  # program_limit_exceeded


def case(sql: str, sqlstate: str, field: str, *args: object) -> object:
    return pytest.param(sql, args, sqlstate, field, id=f"{field}:{sql[:40]}")


WITH_HEADERS = "SELECT spool.enqueue('q', '{}', headers => $1::jsonb)"
CASES = [
    case("SELECT spool.enqueue(NULL, '{}')", INVALID, "queue"),
    case("SELECT spool.enqueue('', '{}')", INVALID, "queue"),
    case("SELECT spool.enqueue($1, '{}')", INVALID, "queue", "q" * (LIMITS.max_name_length + 1)),
    case("SELECT spool.enqueue('two words', '{}')", INVALID, "queue"),
    case("SELECT spool.enqueue(E'tab\\there', '{}')", INVALID, "queue"),
    case("SELECT spool.enqueue('q', NULL)", INVALID, "payload"),
    case("SELECT spool.enqueue('q', '[1e131000]')", TOO_LARGE, "payload"),
    case("SELECT spool.enqueue('q', '{\"n\": 1e-400}')", TOO_LARGE, "payload"),
    case("SELECT spool.enqueue('q', $1::jsonb)", TOO_LARGE, "payload", "[" + ",".join(["1e399"] * 3000) + "]"),
    case("SELECT spool.enqueue('q', $1::jsonb)", TOO_LARGE, "payload", json.dumps("x" * LIMITS.max_payload_bytes)),
    case("SELECT spool.enqueue('q', '{}', run_at => now() + interval '31 days')", INVALID, "run_at"),
    case("SELECT spool.enqueue('q', '{}', run_at => 'infinity')", INVALID, "run_at"),
    case("SELECT spool.enqueue('q', '{}', max_attempts => 0)", INVALID, "max_attempts"),
    case("SELECT spool.enqueue('q', '{}', max_attempts => 101)", INVALID, "max_attempts"),
    case("SELECT spool.enqueue('q', '{}', idempotency_key => $1)", INVALID, "idempotency_key", "k" * 257),
    case("SELECT spool.enqueue('q', '{}', headers => '{\"retries\": 3}')", INVALID, "headers['retries']"),
    case("SELECT spool.enqueue('q', '{}', headers => '{\"a\": {\"b\": \"c\"}}')", INVALID, "headers['a']"),
    case("SELECT spool.enqueue('q', '{}', headers => '[\"a\"]')", INVALID, "headers"),
    case("SELECT spool.enqueue('q', '{}', headers => '\"a\"')", INVALID, "headers"),
    case("SELECT spool.enqueue('q', '{}', headers => '{\"\": \"v\"}')", INVALID, "headers['']"),
    case(WITH_HEADERS, INVALID, "headers", json.dumps({f"h{i}": "v" for i in range(65)})),
    case(WITH_HEADERS, INVALID, "headers", json.dumps({"h": "v" * 9000})),
    case(WITH_HEADERS, INVALID, "headers['kkkk", json.dumps({"k" * 129: "v"})),
]  # fmt: skip


@pytest.fixture(scope="module")
async def one_database(admin_url: str, template_db: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(admin_url, template_db) as url, connected(url) as conn:
        yield conn


@pytest.fixture
async def db(one_database: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The module's database, inside a transaction rolled back after the test."""
    tx = one_database.transaction()
    await tx.start()
    try:
        yield one_database
    finally:
        await tx.rollback()


@pytest.mark.parametrize(("sql", "args", "sqlstate", "field"), CASES)
async def test_enqueue_refuses(
    db: asyncpg.Connection, sql: str, args: tuple[object, ...], sqlstate: str, field: str
) -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with db.transaction():  # a savepoint: the count below runs in the test's transaction
            await db.fetchval(sql, *args)
    assert caught.value.sqlstate == sqlstate, caught.value
    assert str(caught.value).startswith(field), caught.value
    assert await count(db) == 0


async def test_enqueue_accepts_the_limits(db: asyncpg.Connection) -> None:
    headers = {f"h{i}": "v" for i in range(LIMITS.max_headers - 1)} | {"k" * LIMITS.max_name_length: "x"}
    at_limit = [
        ("SELECT spool.enqueue($1, '{}')", "q" * LIMITS.max_name_length),
        ("SELECT spool.enqueue('q', $1::jsonb)", "[1e399, 1e-398, " + "9" * LIMITS.max_json_number_chars + "]"),
        ("SELECT spool.enqueue('q', $1::jsonb)", json.dumps("x" * (LIMITS.max_payload_bytes - 2))),
        ("SELECT spool.enqueue('q', '{}', run_at => now() + interval '29 days' + $1::text::interval)", "23 hours"),
        ("SELECT spool.enqueue('q', '{}', run_at => '4000-01-01 BC', idempotency_key => $1)", "k" * 256),
        ("SELECT spool.enqueue('q', '{}', max_attempts => 100, headers => $1::jsonb)", json.dumps(headers)),
    ]
    for sql, arg in at_limit:
        assert await db.fetchval(sql, arg) is not None, sql
    assert await count(db) == len(at_limit)
    # A time already past is due now, as in Enqueue.
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE run_at < now() - interval '1 day'") == 0


async def test_empty_headers_are_stored_as_none(db: asyncpg.Connection) -> None:
    for headers in ("{}", "null"):
        await db.fetchval("SELECT spool.enqueue('q', '{}', headers => $1::jsonb)", headers)
    assert await db.fetchval("SELECT count(*) FROM spool.jobs WHERE headers IS NULL") == 2


@pytest.mark.parametrize("headers", ['{"retries": 3}', '{"a": ["b"]}', '["a"]', '"a"'])
async def test_the_table_refuses_headers_the_api_cannot_convert(db: asyncpg.Connection, headers: str) -> None:
    job_id = await db.fetchval("SELECT spool.enqueue('q', '{}')")
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute("UPDATE spool.jobs SET headers = $1::text::jsonb WHERE id = $2", headers, job_id)
    assert caught.value.constraint_name == "jobs_headers_strings"
