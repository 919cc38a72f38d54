"""The connection pool, its timeouts, and the one place where driver errors become domain errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from spoold.errors import Conflict, InvalidArgument, SpoolError, StartupError, StepExists, Unavailable

# CHECK constraints are the last line of validation; each names the request field it guards.
_CONSTRAINT_FIELDS = {
    "jobs_queue_length": "queue",
    "jobs_max_attempts_range": "max_attempts",
    "jobs_backoff_positive": "backoff",
    "jobs_lease_positive": "lease_duration",
    "jobs_timeout_positive": "attempt_timeout",
    "jobs_concurrency_pair": "concurrency_limit",
    "jobs_run_at_range": "run_at",
}

# The unique index on a step's name in its pipeline (migrations/0028_step_names_unique.sql).
STEP_NAME_INDEX = "jobs_pipeline_step_name_idx"

# SQLSTATEs that say the database, not the statement, failed: nothing was done, send it again.
_UNAVAILABLE_CLASSES = frozenset({"08", "53"})  # connection exception; insufficient resources
_UNAVAILABLE_STATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, or a fast shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or in recovery
        "57014",  # query_canceled: statement_timeout, or an operator's pg_cancel_backend
        "55P03",  # lock_not_available: lock_timeout
        "25006",  # read_only_sql_transaction: a primary turned standby by a failover
    }
)
_CONFLICT_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

# Driver errors outside PostgreSQL's own: a connection lost or broken under asyncpg (a terminated
# backend whose socket has not closed yet leaves the protocol in a state that raises
# InternalClientError), a socket error, a timeout. These are not, though: they are bugs in Spool.
_CONNECTION_TYPES = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_BUG_TYPES = (
    asyncpg.DataError,
    asyncpg.ClientConfigurationError,
    asyncpg.UnsupportedClientFeatureError,
    asyncpg.UnsupportedServerFeatureError,
)


def classify(exc: BaseException) -> SpoolError | None:
    """The domain error a driver error stands for, by type and SQLSTATE (never by message text);
    None for an error Spool cannot name, which is a bug and answers INTERNAL."""
    if isinstance(exc, asyncpg.CheckViolationError):
        field = _CONSTRAINT_FIELDS.get(exc.constraint_name or "")
        return InvalidArgument(field, "out of range") if field is not None else None
    if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == STEP_NAME_INDEX:
        return StepExists(None)
    if isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
        if state in _CONFLICT_STATES:
            return Conflict(f"transient database conflict ({type(exc).__name__}); nothing was written, retry")
        if state == "57014":
            return Unavailable("the database cancelled the statement (statement timeout, or an operator); retry")
        if state in _UNAVAILABLE_STATES or state[:2] in _UNAVAILABLE_CLASSES:
            return Unavailable(f"database unavailable ({type(exc).__name__}); retry")
        return None
    if isinstance(exc, _BUG_TYPES) or not isinstance(exc, _CONNECTION_TYPES):
        return None
    if isinstance(exc, TimeoutError):
        return Unavailable("the database did not answer in time; retry")
    return Unavailable(f"database unavailable ({type(exc).__name__}); retry")


def transient(exc: BaseException) -> bool:
    """True for a fault of the database's that passes (retry), False for a bug."""
    return isinstance(exc, Unavailable) or isinstance(classify(exc), Unavailable)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turns the driver errors that classify() names into domain errors; others go on as they are."""
    try:
        yield
    except SpoolError:
        raise
    except Exception as exc:
        err = classify(exc)
        if err is None:
            raise
        raise err from exc


# What every spool function sets too (migrations/0009_hardening.sql): built-ins first, temporary objects last.
SEARCH_PATH = "pg_catalog, spool, pg_temp"

# A pooled connection or a plain one: the queries take either.
Connection = asyncpg.Connection | PoolConnectionProxy


class PoolExhausted(Unavailable):
    """No connection came free in time: the pool is busy, or new connections do not open."""


class _Acquire(PoolAcquireContext):
    """asyncpg's acquire, bounded by asyncio.timeout() rather than asyncpg's own timeout, which on
    Python 3.11 runs each acquire in a task of its own (6 us of CPU each against 2, measured)."""

    __slots__ = ("limit",)

    def __init__(self, pool: asyncpg.Pool, limit: float | None) -> None:
        super().__init__(pool, None)
        self.limit = limit

    async def __aenter__(self) -> PoolConnectionProxy:
        try:
            async with asyncio.timeout(self.limit):
                return await super().__aenter__()
        except TimeoutError as exc:
            raise PoolExhausted(
                f"no database connection free within {self.limit:g}s (pool busy, or the database "
                "does not accept connections); retry"
            ) from exc


class Pool(asyncpg.Pool):
    """asyncpg's pool, where every acquire has a timeout by default (its own fetch, execute...
    included), and running out of it is PoolExhausted rather than a bare TimeoutError."""

    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        # asyncpg.create_pool's defaults: the class itself requires them.
        kwargs.setdefault("max_queries", 50000)
        kwargs.setdefault("max_inactive_connection_lifetime", 300.0)
        kwargs.setdefault("loop", None)
        kwargs.setdefault("connection_class", asyncpg.Connection)
        kwargs.setdefault("record_class", asyncpg.Record)
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, timeout if timeout is not None else self.acquire_timeout)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one more round trip per query on the hot path, and pooled connections never hold
    session state. LISTEN has its own connection, advisory locks are transaction-scoped, nothing
    runs SET. An open transaction is still rolled back by asyncpg before this is called."""


def redacted(dsn: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


# What connecting to a database that is down, unreachable, or refuses us raises.
CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def unreachable(dsn: str, exc: BaseException) -> StartupError:
    reason = str(exc) or type(exc).__name__
    return StartupError(f"--database-url/SPOOL_DATABASE_URL: cannot connect to {redacted(dsn)}: {reason}")


def _seconds(d: timedelta) -> float | None:
    return d.total_seconds() if d > timedelta(0) else None


async def create_pool(
    dsn: str,
    min_size: int,
    max_size: int,
    *,
    statement_timeout: timedelta = timedelta(0),
    acquire_timeout: timedelta = timedelta(0),
    connect_timeout: float = 10,
) -> Pool:
    """A pool whose statements PostgreSQL cancels after `statement_timeout` and whose callers
    wait at most `acquire_timeout` for a connection (0: no limit)."""
    # search_path: spoold's own statements resolve built-ins in pg_catalog only, never in a schema
    # another role can create objects in (docs/security.md, "Database roles").
    settings = {"application_name": "spoold", "jit": "off", "search_path": SEARCH_PATH}
    statement = _seconds(statement_timeout)
    if statement is not None:
        settings["statement_timeout"] = str(max(1, round(statement * 1000)))
    pool = Pool(
        dsn,
        timeout=connect_timeout,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        # The claim path is a plpgsql function; a stale generic plan there is re-planned by Postgres.
        server_settings=settings,
        # asyncpg's own timer, a little later than the server's: a statement whose answer never
        # comes (a network that drops packets) still ends, with TimeoutError.
        command_timeout=statement + 5 if statement is not None else None,
        acquire_timeout=_seconds(acquire_timeout),
    )
    await pool
    return pool
