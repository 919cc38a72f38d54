"""The Schedules page in a real headless Chromium: every schedule with its timing, queue, next fire
times and last fire (its job linked); Pause, Resume and Trigger; a name of HTML shown as text; the
queue's rate limit and burst on the Queues page."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.console.browser import Page
from tests.console.conftest import Keys
from tests.console.jobs import call

ADMIN = "/spool.v1.AdminService/"
HTML_NAME = "<img/src=x/onerror=window.__xss=7>"


async def admin(base: str, key: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    return await call(base, key, method, body, ADMIN)


def template(queue: str) -> dict[str, Any]:
    return {"queue": queue, "payload": base64.b64encode(json.dumps({"report": "daily"}).encode()).decode()}


async def schedules(base: str, key: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (await admin(base, key, "ListSchedules", {})).get("schedules", [])}


async def test_schedules_listed_triggered_paused_and_resumed(page: Page, base: str, keys: Keys) -> None:
    nightly = {
        "name": "nightly-report",
        "cron": "0 3 * * *",
        "timeZone": "Europe/Berlin",
        "template": template("reports"),
    }
    await admin(base, keys.admin, "CreateSchedule", {"schedule": nightly})
    odd = {"name": HTML_NAME, "interval": "3600s", "template": template("reports")}
    await admin(base, keys.admin, "CreateSchedule", {"schedule": odd})

    await page.sign_in(keys.admin)
    await page.go("#/schedules")
    row = "table.schedules tr[data-schedule='nightly-report']"
    await page.wait_text(row, "0 3 * * *")
    assert "Europe/Berlin" in await page.text(row)
    assert "never" in await page.text(f"{row} td.last")
    assert await page.script(f'return document.querySelectorAll("{row} td.next li").length') == 3

    await page.click(f"{row} button.trigger")
    await page.wait_text("main .notice.info", "Triggered nightly-report")
    await page.wait_text(f"{row} td.last", "job ")
    fired = (await schedules(base, keys.admin))["nightly-report"]["lastFire"]
    assert fired["triggered"] is True
    await page.wait_text(f"{row} td.last", "PENDING")
    await page.shot("schedules")

    await page.click(f"{row} td.last a")
    await page.wait_text("#job-status", "PENDING")
    assert await page.script("return location.hash") == f"#/job/{fired['jobId']}"
    assert "nightly-report" in await page.text("#job-headers")

    await page.go("#/schedules")
    await page.click(f"{row} button.toggle")
    await page.wait_text(f"{row} th .badge", "paused")
    assert (await schedules(base, keys.admin))["nightly-report"].get("paused") is True
    await page.wait_text(f"{row} button.toggle", "Resume")
    await page.click(f"{row} button.toggle")
    await page.wait_text("main .notice.info", "Resumed nightly-report")
    await page.wait_text(f"{row} button.toggle", "Pause")
    assert not (await schedules(base, keys.admin))["nightly-report"].get("paused")

    # a name of HTML is text: the cell shows it, no element is made of it, nothing ran
    names = await page.script("return [...document.querySelectorAll('th.schedule-name')].map((e) => e.textContent)")
    assert HTML_NAME in names
    assert "every 1h00m" in await page.text("table.schedules tbody tr:first-child")
    assert await page.script("return document.querySelectorAll('main img, main script').length") == 0
    assert await page.script("return window.__xss === undefined") is True
    assert await page.console_errors() == []


async def test_a_queues_rate_limit_and_burst_on_the_queues_page(page: Page, base: str, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {keys.admin}"}) as c:
        answer = await c.post("/v1/queues/exports/jobs", json={"payload": {"n": 1}})
        assert answer.status_code == 202, answer.text
    limit = {"limit": 5, "interval": "60s", "burst": 2}
    await admin(base, keys.admin, "UpdateQueue", {"name": "exports", "rateLimit": limit, "updateMask": "rateLimit"})

    await page.sign_in(keys.admin)
    row = "table.queues tr[data-queue='exports']"
    await page.wait_text(row, "rate ≤5 per 1m00s, burst 2")
    assert "throttled" in await page.text("table.queues thead")


async def test_a_read_key_sees_schedules_with_the_buttons_disabled(page: Page, base: str, keys: Keys) -> None:
    body = {"name": "hourly", "cron": "@hourly", "template": template("reports")}
    await admin(base, keys.admin, "CreateSchedule", {"schedule": body})

    await page.sign_in(keys.read)
    await page.go("#/schedules")
    row = "table.schedules tr[data-schedule='hourly']"
    await page.wait_text(row, "@hourly")
    assert not await page.enabled(f"{row} button.toggle")
    assert not await page.enabled(f"{row} button.trigger")
