"""Who may scrape /metrics: the same key check as every RPC, a key that reads every queue, or
anyone with --metrics-public; and with metrics off there is no endpoint and nothing is counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from spoold.app import App
from spoold.store.jobs import JobStore
from tests.auth.conftest import make_key
from tests.http.conftest import http_settings


@pytest.fixture
async def started(db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[App]:
    server = App(http_settings(**request.param), db_url)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _get(app: App, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{app.http_port}/metrics", headers=headers)


def _reason(answer: httpx.Response) -> str:
    details = answer.json()["error"]["details"]
    return str(next(d["reason"] for d in details if d["@type"].endswith("ErrorInfo")))


@pytest.mark.parametrize("started", [{"auth": "required"}], indirect=True)
async def test_keys_required_needs_a_read_key_over_every_queue(started: App, db: asyncpg.Connection) -> None:
    missing = await _get(started)
    assert (missing.status_code, _reason(missing)) == (401, "API_KEY_MISSING")
    worker = await _get(started, await make_key(db, ["work"]))
    assert (worker.status_code, _reason(worker)) == (403, "SCOPE_MISSING")
    some_queues = await _get(started, await make_key(db, ["read"], ["emails"]))
    assert (some_queues.status_code, _reason(some_queues)) == (403, "PERMISSION_DENIED")
    reader = await _get(started, await make_key(db, ["read"]))
    assert reader.status_code == 200 and "spool_rpc_duration_seconds" in reader.text


@pytest.mark.parametrize("started", [{"auth": "required", "metrics_public": True}], indirect=True)
async def test_metrics_public_opens_it_without_a_key(started: App) -> None:
    answer = await _get(started)
    assert answer.status_code == 200 and "spool_loop_runs_total" in answer.text


@pytest.mark.parametrize("started", [{"metrics": False}], indirect=True)
async def test_metrics_off_serves_and_counts_nothing(started: App) -> None:
    answer = await _get(started)
    assert answer.status_code == 404
    assert isinstance(started.store, JobStore) and started.store.metrics is None
    assert started.metrics is None
