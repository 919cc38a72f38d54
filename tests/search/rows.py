"""Jobs written straight into spool.jobs, in any state and at any age, faster than the API can."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_INSERT = """
INSERT INTO spool.jobs (queue, state, payload_json, content_type, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration,
    error_type, error_message, idempotency_key, concurrency_key, concurrency_limit,
    created_at, finished_at, lease_token, started_at, lease_expires_at, attempt, run_at)
SELECT $1, $2::spool.job_state, coalesce($3::jsonb, jsonb_build_object('n', g)), 'application/json', 1,
    'exponential', interval '1 second', interval '5 minutes', 2, true, interval '30 seconds',
    $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE 1 END,
    coalesce($8, now()),
    CASE WHEN $2 IN ('succeeded', 'dead', 'cancelled') THEN coalesce($9, now()) END,
    CASE WHEN $2 = 'running' THEN nextval('spool.lease_token_seq') END,
    CASE WHEN $2 = 'running' THEN now() END,
    CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END,
    $11, coalesce($12, now())
FROM generate_series(1, $10) AS g
ORDER BY g
RETURNING id
"""


async def insert(
    db: asyncpg.Connection,
    count: int = 1,
    *,
    queue: str = "q",
    state: str = "pending",
    payload: str | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
    idempotency_key: str | None = None,
    concurrency_key: str | None = None,
    created_at: datetime | None = None,
    finished_at: datetime | None = None,
    attempt: int = 0,
    run_at: datetime | None = None,
) -> list[str]:
    """Inserts `count` jobs (payload {"n": i} unless given); returns their ids as the API spells them."""
    found = await db.fetch(
        _INSERT,
        queue,
        state,
        payload,
        error_type,
        error_message,
        idempotency_key,
        concurrency_key,
        created_at,
        finished_at,
        count,
        attempt,
        run_at,
    )
    return [str(r["id"]) for r in found]


async def add_attempt(db: asyncpg.Connection, job_id: str) -> None:
    """A finished attempt on the job, to see that it goes with the job."""
    await db.execute(
        """INSERT INTO spool.attempts (job_id, lease_token, number, started_at, finished_at, outcome)
           VALUES ($1, nextval('spool.lease_token_seq'), 1, now(), now(), 'failed')""",
        int(job_id),
    )
