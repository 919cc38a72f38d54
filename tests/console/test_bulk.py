"""Bulk operations as tracked work: counted first, run in batches by the runner loop (run_once
driven here), abortable, and recorded (who, when, which filter, how many)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from spoold.app import App
from spoold.config import Settings
from spoold.loops import BulkRunner
from spoold.store.bulk import BulkStore
from tests.console.conftest import Keys
from tests.console.jobs import call, kill
from tests.http.conftest import connect_info, fingerprint, http_settings

ADMIN = "/spool.v1.AdminService/"


@pytest.fixture
def settings() -> Settings:
    # The app's own runner looks once at start-up, then not for an hour: run_once is driven here.
    return http_settings(auth="required", bulk_interval=timedelta(hours=1))


def runner(app: App, batch: int = 2) -> BulkRunner:
    assert app.pool is not None and app.searches is not None
    return BulkRunner(BulkStore(app.pool, app.searches), 3600, batch)


async def admin(base: str, key: str, method: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        return await c.post(ADMIN + method, json=body)


async def ok(base: str, key: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await admin(base, key, method, body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def states(base: str, key: str, ids: list[str]) -> list[str]:
    found = []
    for job_id in ids:
        job = await call(base, key, "GetJob", {"jobId": job_id})
        found.append(job["job"]["state"].removeprefix("STATE_"))
    return found


async def drain(r: BulkRunner) -> int:
    rounds = 0
    while await r.run_once():
        rounds += 1
        assert rounds < 100
    return rounds


EARLIER, LATER = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
DECLINED = {"statuses": ["STATUS_DEAD"], "errorContains": "declined"}


async def test_a_requeue_of_everything_matching_is_counted_run_in_batches_and_recorded(
    app: App, base: str, keys: Keys
) -> None:
    matching = [await kill(base, keys.admin, error=f"card declined #{i}") for i in range(5)]
    other = [await kill(base, keys.admin, error="address unknown") for _ in range(2)]

    count = await ok(base, keys.read, "CountJobs", {"filter": DECLINED})
    none = await ok(base, keys.read, "CountJobs", {"filter": DECLINED, "action": "ACTION_CANCEL"})
    capped = await ok(base, keys.read, "CountJobs", {"filter": DECLINED, "limit": 3})
    started = await ok(base, keys.admin, "StartBulkOperation", {"action": "ACTION_REQUEUE", "filter": DECLINED})
    op = started["operation"]
    assert count == {"count": "5"} and capped == {"count": "3", "more": True}
    assert none == {}  # a cancel would touch none of these DEAD jobs
    assert op["state"] == "STATE_RUNNING" and op["expected"] == "5" and "done" not in op
    assert op["createdBy"].endswith("(on-call)") and op["filter"] == DECLINED

    assert await drain(runner(app, batch=2)) == 3  # 2 + 2 + 1

    done = (await ok(base, keys.read, "GetBulkOperation", {"id": op["id"]}))["operation"]
    assert done["state"] == "STATE_SUCCEEDED" and done["done"] == "5" and "finishedAt" in done
    assert await states(base, keys.admin, matching) == ["PENDING"] * 5
    assert await states(base, keys.admin, other) == ["DEAD"] * 2
    listed = await ok(base, keys.read, "ListBulkOperations", {})
    assert [o["id"] for o in listed["operations"]] == [op["id"]]


async def test_jobs_that_arrive_after_the_start_are_not_touched(app: App, base: str, keys: Keys) -> None:
    before = await kill(base, keys.admin)
    op = (await ok(base, keys.admin, "StartBulkOperation", {"action": "ACTION_REQUEUE", "filter": DECLINED}))[
        "operation"
    ]
    after = await kill(base, keys.admin)

    await drain(runner(app))

    assert await states(base, keys.admin, [before, after]) == ["PENDING", "DEAD"]
    assert (await ok(base, keys.read, "GetBulkOperation", {"id": op["id"]}))["operation"]["done"] == "1"


async def test_an_aborted_operation_stops_after_its_batch_and_keeps_what_it_did(
    app: App, base: str, keys: Keys
) -> None:
    ids = [await kill(base, keys.admin) for _ in range(5)]
    op = (await ok(base, keys.admin, "StartBulkOperation", {"action": "ACTION_REQUEUE", "filter": DECLINED}))[
        "operation"
    ]
    r = runner(app, batch=2)

    assert await r.run_once() == 2
    aborted = (await ok(base, keys.admin, "AbortBulkOperation", {"id": op["id"]}))["operation"]
    again = (await ok(base, keys.admin, "AbortBulkOperation", {"id": op["id"]}))["operation"]

    assert aborted["state"] == "STATE_ABORTED" and aborted["done"] == "2"
    assert again == aborted  # idempotent
    assert await r.run_once() == 0
    assert await states(base, keys.admin, ids) == ["PENDING"] * 2 + ["DEAD"] * 3


async def test_a_bulk_cancel_ends_pending_jobs_and_flags_running_ones(app: App, base: str, keys: Keys) -> None:
    pending = [
        (await call(base, keys.admin, "Enqueue", {"queue": "reports", "payload": "e30="}))["job"]["id"]
        for _ in range(3)
    ]
    leased = await call(base, keys.admin, "Lease", {"queues": ["reports"], "workerId": "w", "maxJobs": 1})
    running = leased["jobs"][0]["job"]["id"]
    body = {"action": "ACTION_CANCEL", "filter": {"queues": ["reports"]}}

    op = (await ok(base, keys.admin, "StartBulkOperation", body))["operation"]
    await drain(runner(app))

    assert op["expected"] == "3"
    assert await states(base, keys.admin, [p for p in pending if p != running]) == ["CANCELLED"] * 2
    job = (await call(base, keys.admin, "GetJob", {"jobId": running}))["job"]
    assert job["state"] == "STATE_RUNNING" and job["cancelRequested"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "ACTION_REQUEUE", "filter": {}}, "filter"),
        ({"action": "ACTION_REQUEUE"}, "filter"),
        ({"filter": DECLINED}, "action"),
        ({"action": "ACTION_CANCEL", "filter": DECLINED, "includeSucceeded": True}, "include_succeeded"),
        (
            {
                "action": "ACTION_REQUEUE",
                "filter": {"createdAfter": "2026-01-02T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"},
            },
            "filter.created",
        ),
    ],
)
async def test_a_bad_start_is_refused_naming_the_field_and_changes_nothing(
    base: str, keys: Keys, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    await kill(base, keys.admin)
    before = await fingerprint(db)

    answer = await admin(base, keys.admin, "StartBulkOperation", body)

    assert answer.status_code == 400
    info = connect_info(answer.json())
    assert info.reason == "INVALID_ARGUMENT" and info.metadata["field"].startswith(field)
    assert await fingerprint(db) == before
    assert await db.fetchval("SELECT count(*) FROM spool.bulk_operations") == 0


async def test_a_read_key_counts_and_reads_but_cannot_start_or_abort(
    base: str, keys: Keys, db: asyncpg.Connection
) -> None:
    await kill(base, keys.admin)
    op = (await ok(base, keys.admin, "StartBulkOperation", {"action": "ACTION_REQUEUE", "filter": DECLINED}))[
        "operation"
    ]

    start = await admin(base, keys.read, "StartBulkOperation", {"action": "ACTION_REQUEUE", "filter": DECLINED})
    abort = await admin(base, keys.read, "AbortBulkOperation", {"id": op["id"]})

    assert start.status_code == abort.status_code == 403
    assert connect_info(start.json()).reason == connect_info(abort.json()).reason == "SCOPE_MISSING"
    assert await db.fetchval("SELECT count(*) FROM spool.bulk_operations WHERE state = 'running'") == 1


@pytest.mark.parametrize("op_id", ["999", "abc", "-1", ""])
async def test_an_unknown_operation_is_not_found(base: str, keys: Keys, op_id: str) -> None:
    answer = await admin(base, keys.admin, "GetBulkOperation", {"id": op_id})

    assert answer.status_code == 404
    assert connect_info(answer.json()).reason == "BULK_OPERATION_NOT_FOUND"


async def test_a_key_for_some_queues_counts_only_those(base: str, keys: Keys, db: asyncpg.Connection) -> None:
    from tests.auth.conftest import make_key

    await kill(base, keys.admin, "payments")
    narrow = await make_key(db, ["read"], ["pay*"])

    mine = await admin(base, narrow, "CountJobs", {"filter": {"queues": ["payments"]}})
    everything = await admin(base, narrow, "CountJobs", {"filter": {}})
    theirs = await admin(base, narrow, "CountJobs", {"filter": {"queues": ["emails"]}})

    assert mine.json() == {"count": "1"}
    assert everything.status_code == 400 and connect_info(everything.json()).metadata["field"] == "filter.queues"
    assert theirs.status_code == 403 and connect_info(theirs.json()).reason == "QUEUE_NOT_ALLOWED"
