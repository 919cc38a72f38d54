"""Fixtures: a real PostgreSQL (SPOOL_TEST_DATABASE_URL, or a throwaway embedded server), a
template database migrated once, a fresh database per test, and spoold served over loopback gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

import spool
from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.config import Settings
from spoold.store.migrate import migrate

# Property tests (tests/fuzz): a bounded, repeatable run by default, as in CI; a long random one with
# `pytest --hypothesis-profile=fuzz-long` (failures are kept in .hypothesis/ and replayed first).
_HYPOTHESIS = {
    "deadline": None,  # each example is a round trip to a server and a database: timing varies
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}
hypothesis_settings.register_profile("fuzz-ci", max_examples=50, derandomize=True, database=None, **_HYPOTHESIS)
hypothesis_settings.register_profile("fuzz-long", max_examples=2000, **_HYPOTHESIS)
hypothesis_settings.load_profile("fuzz-ci")

# spoold processes that tests start serve no HTTP port unless a test asks for one (tests bind
# free ports, never spoold's default 8080).
os.environ.setdefault("SPOOL_HTTP_PORT", "0")


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at another database (works for TCP and unix-socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    url = os.environ.get("SPOOL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from spoold import embedded

    with tempfile.TemporaryDirectory(prefix="spool-test-pg-") as tmp:
        database = embedded.start(Path(tmp))
        try:
            yield database.url
        finally:
            database.stop()


@pytest.fixture(scope="session")
async def template_db(admin_url: str) -> AsyncIterator[str]:
    name = f"spool_template_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(admin_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A migrated database made from the template, dropped on exit; yields its URL."""
    name = f"spool_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield with_database(admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (commits, NOTIFY and several connections work)."""
    async with fresh_database(admin_url, template_db) as url:
        yield url


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for looking at rows behind the API."""
    async with connected(db_url) as conn:
        yield conn


def test_settings(**changes: object) -> Settings:
    """Settings for tests: port 0, no HTTP port, quick polls; the reaper, pruner and scheduler are
    driven by hand (run_once)."""
    base = Settings(
        port=0,
        http_port=0,
        pool_min_size=1,
        pool_max_size=8,
        lease_poll_interval=timedelta(milliseconds=200),
        reaper_interval=timedelta(hours=1),
        pruner_interval=timedelta(hours=1),
        scheduler_interval=timedelta(hours=1),
        shutdown_grace=timedelta(seconds=2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return test_settings()


@pytest.fixture
async def app(db_url: str, settings: Settings) -> AsyncIterator[App]:
    server = App(settings, db_url)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(app: App) -> AsyncIterator[spool.AsyncClient]:
    """The Python client, connected to the `app` fixture's server."""
    async with spool.AsyncClient(f"127.0.0.1:{app.port}") as c:
        yield c


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> queue_service_pb2_grpc.QueueServiceStub:
    return queue_service_pb2_grpc.QueueServiceStub(channel)


async def wait_until(predicate, within: float = 10.0, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Polls an (async) predicate until it is true; fails the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
