"""The console in a real headless Chromium: sign in, find a DEAD job by its error text, requeue it
and watch a real worker take it to SUCCEEDED without a reload; a read-only key; a forged request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

import spool
from spoold.app import App
from tests.conftest import wait_until
from tests.console.browser import Page
from tests.console.conftest import Keys
from tests.console.jobs import kill


class Payments:
    """A worker's handler whose cause of failure can be fixed, and whose run can be held."""

    def __init__(self) -> None:
        self.broken = True
        self.release = asyncio.Event()

    async def __call__(self, job: spool.ActiveJob) -> Any:
        if self.broken:
            raise RuntimeError("card declined by the issuer (order 5512)")
        await self.release.wait()
        return {"charged": job.json()["order"]}


@pytest.fixture
async def payments(app: App, keys: Keys) -> AsyncIterator[Payments]:
    """A real spool.Worker serving the payments queue with a work key, until the test ends."""
    handler = Payments()
    client = spool.AsyncClient(f"127.0.0.1:{app.port}", token=keys.work)
    worker = spool.Worker(client, ["payments"], poll_wait=timedelta(milliseconds=500), worker_id="payments-1")
    worker.handler("payments")(handler)
    task = asyncio.create_task(worker.serve())
    try:
        yield handler
    finally:
        handler.release.set()
        worker.stop()
        await asyncio.wait_for(task, 15)
        await client.close()


async def job_status(base: str, key: str, job_id: str) -> str:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}) as c:
        return str((await c.get(f"/v1/jobs/{job_id}")).json()["status"])


async def test_find_a_dead_job_requeue_it_and_watch_it_succeed_live(
    page: Page, base: str, keys: Keys, payments: Payments
) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {keys.admin}"}) as c:
        body = {"payload": {"order": 5512, "amount": "12.40"}, "headers": {"traceparent": "00-4bf9-01"}}
        job_id = (await c.post("/v1/queues/payments/jobs", json=body)).json()["jobId"]

    async def dead() -> bool:
        return await job_status(base, keys.admin, job_id) == "DEAD"

    await wait_until(dead, within=20)

    await page.open("/")
    await page.shot("sign-in")
    await page.sign_in(keys.admin)
    await page.wait_text("table.queues", "payments")
    await page.shot("queues")

    await page.go("#/jobs")
    await page.script("document.getElementById('f-status').value = 'dead'")
    await page.type("#f-error", "declined by the issuer")
    await page.click("form.filters button[type=submit]")
    await page.wait_text("table.jobs", "card declined by the issuer")
    assert "error=declined" in await page.script("return location.hash")
    await page.shot("jobs")
    await page.click(f'table.jobs tr[data-job="{job_id}"] a')
    await page.wait_text("#job-status", "DEAD")
    await page.script("window.__sameDocument = true")

    payments.broken = False  # the cause is fixed; now requeue
    await page.click("#requeue")
    await page.wait_text("#job-status", "RUNNING")
    await page.wait_text("ol.timeline", "requeued (1)")
    await page.shot("job-running")
    payments.release.set()
    await page.wait_text("#job-status", "SUCCEEDED")

    assert await page.script("return window.__sameDocument") is True  # no reload: pushed live
    assert json.loads(await page.text("#job-result")) == {"charged": 5512}
    assert "payments-1" in await page.text("ol.timeline")
    await page.shot("job")
    assert await page.console_errors() == []


async def test_a_read_key_sees_every_page_but_cannot_act(page: Page, base: str, keys: Keys) -> None:
    job_id = await kill(base, keys.admin)

    await page.sign_in(keys.read)
    await page.wait_text("#who", "read-only")
    pause = await page.element("table.queues button")
    assert not await page._run(pause.is_enabled)
    await page.go(f"#/job/{job_id}")
    await page.wait_text("#job-status", "DEAD")
    assert not await page.enabled("#requeue")
    assert not await page.enabled("#cancel")
    await page.shot("read-only")

    csrf = await page.script("return document.cookie.match(/spool_csrf=([^;]+)/)[1]")
    forced = await page.fetch("POST", "/spool.v1.QueueService/Requeue", {"jobIds": [job_id]}, {"x-spool-csrf": csrf})

    assert forced["status"] == 403
    assert json.loads(forced["body"])["code"] == "permission_denied"
    assert await job_status(base, keys.admin, job_id) == "DEAD"


async def test_a_requeue_without_the_csrf_token_is_refused(page: Page, base: str, keys: Keys) -> None:
    job_id = await kill(base, keys.admin)
    await page.sign_in(keys.admin)

    assert await page.script("return document.cookie.includes('spool_session')") is False  # HttpOnly
    forged = await page.fetch("POST", "/spool.v1.QueueService/Requeue", {"jobIds": [job_id]}, {})
    rest = await page.fetch("POST", f"/v1/jobs/{job_id}:requeue", {}, {})

    assert forged["status"] == 403 and json.loads(forged["body"])["code"] == "permission_denied"
    assert rest["status"] == 403 and "CSRF_TOKEN_INVALID" in rest["body"]
    assert await job_status(base, keys.admin, job_id) == "DEAD"


XSS = '<img src=x onerror="window.__xss=1">'


async def test_html_in_a_payload_error_header_or_queue_name_is_shown_as_text(page: Page, base: str, keys: Keys) -> None:
    queue = "<img/src=x/onerror=window.__xss=2>"
    long = "x" * 20_000
    error = f"{XSS}<script>window.__xss=3</script> {long}"
    job_id = await kill(
        base, keys.admin, queue, payload={"note": XSS, "long": long}, headers={"x-note": XSS}, error=error
    )

    await page.sign_in(keys.admin)
    await page.wait_text("table.queues", queue)
    await page.go("#/dead")
    await page.wait_text("table.groups", XSS)
    await page.go(f"#/job/{job_id}")
    await page.wait_text("#job-payload", '"note": "<img src=x onerror=\\"window.__xss=1\\">"')  # as JSON
    await page.wait_text("#job-headers", XSS)
    await page.wait_text("#job-error", XSS)
    await page.shot("xss-as-text")

    assert await page.script("return document.querySelectorAll('main img, main script').length") == 0
    assert await page.script("return window.__xss === undefined") is True
    width = await page.script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert width is True  # 20,000 characters wrap; the page does not grow sideways


async def test_a_key_revoked_while_the_page_is_open_brings_back_the_sign_in(
    page: Page, base: str, keys: Keys, db: Any
) -> None:
    from spoold.store.keys import KeyStore
    from tests.auth.conftest import key_id, make_key

    await kill(base, keys.admin)
    key = await make_key(db, ["admin"], name="leaving")
    await page.sign_in(key)
    await page.wait_text("table.queues", "payments")

    await KeyStore(db).revoke(key_id(key))

    await page.wait_text("form.signin", "revoked")
    await page.shot("revoked")


async def test_an_invalid_filter_in_the_url_shows_the_servers_error(page: Page, keys: Keys) -> None:
    await page.sign_in(keys.admin)

    await page.go("#/jobs?created_after=yesterday-ish&status=dead")
    await page.wait_text("main .notice.error", "This search cannot run")
    assert "createdAfter" in await page.text("main .notice.error") or "created" in await page.text("main .notice.error")
    await page.go("#/jobs?status=sleeping")
    await page.wait_text("main .notice.error", "STATUS_SLEEPING")
    await page.go("#/jobs?payload=%7Bnot%20json")
    await page.wait_text("main .notice.error", "payload")
    assert await page.enabled("form.filters button[type=submit]")  # the page still works
