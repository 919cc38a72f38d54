"""The Job page's attempt timeline shows each attempt's log lines, in a real headless Chromium: a
real spool.Worker's handler logs (job.log and Python logging, more than the bound, and a line of
HTML), fails once and then succeeds; the lines are there for each attempt, collapsed until opened,
as text, with the marker where lines were dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

import spool
from spoold.app import App
from tests.conftest import wait_until
from tests.console.browser import Page
from tests.console.conftest import Keys
from tests.console.test_browser import job_status

HTML_LINE = "<script>window.__xss=4</script> gateway slow"


async def _handler(job: spool.ActiveJob) -> dict[str, int]:
    for i in range(70):  # about 70,000 characters: more than an attempt keeps
        job.log("filler %03d %s", i, "x" * 1000)
    job.log("charging card ending 4242 (attempt %d)", job.attempt)
    logging.getLogger("payments").warning(HTML_LINE)
    if job.attempt == 1:
        raise RuntimeError("gateway timeout")
    return {"attempt": job.attempt}


@pytest.fixture
async def worker(app: App, keys: Keys) -> AsyncIterator[None]:
    client = spool.AsyncClient(f"127.0.0.1:{app.port}", token=keys.work)
    w = spool.Worker(client, ["payments"], poll_wait=timedelta(milliseconds=500), worker_id="payments-1")
    w.handler("payments")(_handler)
    task = asyncio.create_task(w.serve())
    try:
        yield
    finally:
        w.stop()
        await asyncio.wait_for(task, 15)
        await client.close()


def _count(css: str) -> str:
    return f"return document.querySelectorAll({css!r}).length"


async def test_each_attempts_log_lines_are_in_the_timeline_as_text(
    page: Page, base: str, keys: Keys, worker: None
) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {keys.admin}"}) as c:
        body = {
            "payload": {"order": 7},
            "maxAttempts": 2,
            "backoff": {"kind": "KIND_FIXED", "initialInterval": "0.1s", "jitter": False},
        }
        answer = await c.post("/v1/queues/payments/jobs", json=body)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["jobId"]

    async def succeeded() -> bool:
        return await job_status(base, keys.admin, job_id) == "SUCCEEDED"

    await wait_until(succeeded, within=30)

    await page.sign_in(keys.admin)
    await page.go(f"#/job/{job_id}")
    await page.wait_text("#job-status", "SUCCEEDED")
    await page.wait(lambda d: d.execute_script(_count("ol.timeline details.attempt-logs")) == 2, what="two logs")
    assert (
        await page.script("return [...document.querySelectorAll('details.attempt-logs')].some((d) => d.open)") is False
    )

    await page.click("ol.timeline li.succeeded details.attempt-logs summary")
    shown = "ol.timeline li.succeeded details.attempt-logs pre"
    await page.wait_text(shown, "charging card ending 4242 (attempt 2)")
    await page.wait_text(shown, HTML_LINE)
    await page.wait_text(shown, "[spool: ")  # the marker where the oldest lines were dropped
    assert "filler 000" not in await page.text(shown)
    await page.click("ol.timeline li.failed details.attempt-logs summary")
    await page.wait_text("ol.timeline li.failed details.attempt-logs pre", "charging card ending 4242 (attempt 1)")
    await page.shot("job-logs")

    assert await page.script(_count("main script, main img")) == 0
    assert await page.script("return window.__xss === undefined") is True
    assert await page.console_errors() == []
