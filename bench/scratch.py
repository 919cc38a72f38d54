"""What every benchmark stands on: a scratch database, spoold as a subprocess, a uvloop runner.

The load generator and the server are separate processes, as in production: a benchmark never
runs spoold inside its own event loop, so client and server CPU are not mixed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spool.v1 import queue_service_pb2_grpc
from spoold.store.migrate import migrate

if TYPE_CHECKING:
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

T = TypeVar("T")

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
QUEUE = "bench"


def admin_url() -> str:
    return os.environ.get("SPOOL_BENCH_DATABASE_URL", DEFAULT_URL)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs the load generator on uvloop (the server uses it too), falling back to asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a server dependency on every supported platform
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextlib.asynccontextmanager
async def scratch_database(server_url: str | None = None) -> AsyncIterator[str]:
    """A new, migrated database on the bench server (or on server_url), dropped afterwards whatever happens."""
    url = server_url or admin_url()
    name = f"spool_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        db_url = with_database(url, name)
        conn = await asyncpg.connect(db_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield db_url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL of the benchmark's own (spoold's embedded one, in a temporary directory, with
    PostgreSQL's defaults: autovacuum on), for measurements the shared server cannot give; yields its URL."""
    from spoold import embedded

    with tempfile.TemporaryDirectory(prefix="spool-bench-pg-") as tmp:
        database = embedded.start(Path(tmp))
        try:
            yield database.url
        finally:
            database.stop()


async def reset(conn: asyncpg.Connection) -> None:
    """Empties the job tables between cases, so one case's leftovers never slow the next."""
    # CASCADE: the tables that reference jobs (attempt logs, pipelines, ...) go with them.
    await conn.execute("TRUNCATE spool.attempts, spool.jobs CASCADE")
    await settle(conn)


# Every column insert_jobs would write for a default no-op job, as one set-based INSERT.
_FILL = """
INSERT INTO spool.jobs (queue, payload_json, content_type, run_at, max_attempts, backoff_kind,
    backoff_initial, backoff_max, backoff_multiplier, backoff_jitter, lease_duration)
SELECT $1, jsonb_build_object('n', g), 'application/json', now() - interval '1 second', 1,
    'exponential', interval '1 second', interval '5 minutes', 2, true, interval '30 seconds'
FROM generate_series(1, $2) AS g
"""


async def fill(conn: asyncpg.Connection, count: int, queue: str = QUEUE) -> None:
    """Adds `count` ready no-op jobs, as Enqueue would store them, in chunks (fast, bounded WAL).

    Then vacuums and checkpoints: otherwise the autovacuum and checkpoint that a bulk insert sets off
    land in the middle of whichever measurement comes next, and on a small machine that is most of
    the difference between two runs."""
    chunk = 100_000
    for start in range(0, count, chunk):
        await conn.execute(_FILL, queue, min(chunk, count - start))
    await settle(conn)


async def settle(conn: asyncpg.Connection) -> None:
    await conn.execute("VACUUM (ANALYZE) spool.jobs")
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spoold_command() -> list[str]:
    script = Path(sys.executable).with_name("spoold")
    if script.exists():
        return [str(script)]
    found = shutil.which("spoold")
    return [found] if found else [sys.executable, "-m", "spoold"]


@dataclass
class Server:
    """A running spoold subprocess and a channel to it."""

    process: asyncio.subprocess.Process
    target: str
    channel: grpc.aio.Channel
    http_port: int | None = None  # with spoold(..., http=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stub(self) -> QueueServiceAsyncStub:
        return queue_service_pb2_grpc.QueueServiceStub(self.channel)


@contextlib.asynccontextmanager
async def spoold(
    db_url: str, http: bool = False, environment: dict[str, str] | None = None, **settings: str
) -> AsyncIterator[Server]:
    """spoold on a free port against db_url (and on a free HTTP port too with `http`); SIGTERM and
    a wait on the way out. `environment`: more variables as they are (OTEL_*, for instance)."""
    port, http_port = free_port(), free_port() if http else None
    env = {
        **os.environ,
        "SPOOL_DATABASE_URL": db_url,
        "SPOOL_LOG_LEVEL": "WARNING",
        "SPOOL_HTTP_PORT": str(http_port or 0),
    }
    env.update({f"SPOOL_{k.upper()}": v for k, v in settings.items()})
    env.update(environment or {})
    with tempfile.TemporaryFile() as log:
        command = [*_spoold_command(), "--port", str(port)]
        process = await asyncio.create_subprocess_exec(*command, env=env, stdout=log, stderr=log)
        target = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                await _wait_serving(channel, process, log)
                yield Server(process, target, channel, http_port)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_serving(channel: grpc.aio.Channel, process: asyncio.subprocess.Process, log: Any) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(300):
        if process.returncode is not None:
            log.seek(0)
            raise RuntimeError(f"spoold exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            # types-grpcio-health-checking declares no methods on HealthStub.
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)  # polling a subprocess's readiness: there is no event to wait on
    raise RuntimeError("spoold did not become SERVING within 15 s")
