"""The connection pool and the translation of driver errors into domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from spoold.errors import Conflict, InvalidArgument, Unavailable

# CHECK constraints are the last line of validation; each names the request field it guards.
_CONSTRAINT_FIELDS = {
    "jobs_queue_length": "queue",
    "jobs_max_attempts_range": "max_attempts",
    "jobs_backoff_positive": "backoff",
    "jobs_lease_positive": "lease_duration",
    "jobs_timeout_positive": "attempt_timeout",
    "jobs_concurrency_pair": "concurrency_limit",
}

_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turns driver errors into domain errors, by constraint name and class, never by message."""
    try:
        yield
    except asyncpg.CheckViolationError as exc:
        field = _CONSTRAINT_FIELDS.get(exc.constraint_name or "")
        if field is None:
            raise
        raise InvalidArgument(field, "out of range") from exc
    except _UNAVAILABLE as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise Conflict(f"transient database conflict ({type(exc).__name__}); nothing was written, retry") from exc


# A pooled connection or a plain one: the queries take either.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one more round trip per query on the hot path, and pooled connections never hold
    session state. LISTEN has its own connection, advisory locks are transaction-scoped, nothing
    runs SET. An open transaction is still rolled back by asyncpg before this is called."""


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        # The claim path is a plpgsql function; a stale generic plan there is re-planned by Postgres.
        server_settings={"application_name": "spoold", "jit": "off"},
    )
    assert pool is not None
    return pool
