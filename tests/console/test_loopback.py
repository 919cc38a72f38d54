"""On loopback with keys not required (the `make run` default) the console needs no sign-in; a
job enqueued from the console, and a copy of it with its payload edited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from spoold.config import Settings
from tests.console.browser import Page
from tests.http.conftest import http_settings


@pytest.fixture
def settings() -> Settings:
    return http_settings(auth="auto", console_feed_interval=timedelta(milliseconds=200))


async def test_no_sign_in_and_a_job_enqueued_then_copied_from_the_console(page: Page) -> None:
    await page.open("/#/enqueue")
    await page.wait_text("#who", "no sign-in needed")
    await page.type("#e-queue", "reports")
    await page.type("#e-payload", '{"report": "weekly", "week": 49}')
    await page.type("#e-headers", '{"x-team": "finance"}')
    await page.type("#e-maxAttempts", "3")
    await page.shot("enqueue")
    await page.click("form.enqueue button[type=submit]")
    await page.click("main .notice.info + a")

    await page.wait_text("#job-status", "PENDING")
    assert json.loads(await page.text("#job-payload")) == {"report": "weekly", "week": 49}
    assert "finance" in await page.text("#job-headers")
    first = await page.script("return location.hash")

    await page.click("a[href^='#/enqueue?copy=']")
    await page.wait_text("#e-payload", "weekly")
    await page.script("document.getElementById('e-payload').value = arguments[0]", '{"report": "weekly", "week": 50}')
    await page.click("form.enqueue button[type=submit]")
    await page.click("main .notice.info + a")
    await page.wait_text("#job-payload", "50")

    assert await page.script("return location.hash") != first
    assert "finance" in await page.text("#job-headers")
    await page.go("#/queues")
    await page.wait_text("table.queues tr[data-queue='reports'] td.ready", "2")
    await page.shot("queues-loopback")


async def test_the_enqueue_form_shows_the_servers_refusal(page: Page) -> None:
    await page.open("/#/enqueue")
    await page.type("#e-queue", "reports")
    await page.type("#e-payload", '{"ok": true}')
    await page.type("#e-maxAttempts", "1000")
    await page.click("form.enqueue button[type=submit]")

    await page.wait_text("main .notice.error", "max")
