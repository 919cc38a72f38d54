"""Clients connected to the in-process spoold of the `app` fixture, and a way to run a Worker beside a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

import spool
from spoold.app import App


@pytest.fixture
def sync_client(app: App) -> Iterator[spool.Client]:
    with spool.Client(f"127.0.0.1:{app.port}") as c:
        yield c


@asynccontextmanager
async def serving(worker: spool.Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Runs worker.serve() in the background; stops it (gracefully) and re-raises its failure on exit."""
    task = asyncio.create_task(worker.serve())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
