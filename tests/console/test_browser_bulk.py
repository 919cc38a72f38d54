"""Bulk operations from the console, in a real headless Chromium: count, confirm, progress pushed
from the server's batches, and the record on the Bulk page."""

from __future__ import annotations

import asyncio

from selenium.webdriver.support.expected_conditions import alert_is_present

from tests.console.browser import Page
from tests.console.conftest import Keys
from tests.console.jobs import call, kill


async def test_requeue_all_matching_from_dead_letters_is_counted_confirmed_and_recorded(
    page: Page, base: str, keys: Keys
) -> None:
    ids = [await kill(base, keys.admin, error="card declined") for _ in range(3)]
    other = await kill(base, keys.admin, error="address unknown")

    await page.sign_in(keys.admin)
    await page.go("#/dead?error=declined")
    await page.wait_text("table.jobs", "card declined")
    await page.click("#bulk-requeue")
    alert = await page.wait(alert_is_present(), what="the confirmation")
    assert "Requeue 3 jobs matching error=declined?" in alert.text
    await asyncio.to_thread(alert.accept)
    await page.wait_text(".bulk", "requeue 3 of 3 · succeeded")
    await page.shot("bulk-progress")

    await page.go("#/bulk")
    await page.wait_text("table.bulk-ops", "errorContains=declined")
    row = await page.text("table.bulk-ops tbody tr")
    assert "requeue" in row and "succeeded" in row and keys.admin.split("_")[1] in row and "(on-call)" in row
    await page.shot("bulk")
    states = [(await call(base, keys.admin, "GetJob", {"jobId": i}))["job"]["state"] for i in [*ids, other]]
    assert states == ["STATE_PENDING"] * 3 + ["STATE_DEAD"]


async def test_a_read_key_cannot_start_a_bulk_operation(page: Page, base: str, keys: Keys) -> None:
    await kill(base, keys.admin)
    await page.sign_in(keys.read)
    await page.go("#/dead")
    await page.wait_text("table.jobs", "card declined")

    assert not await page.enabled("#bulk-requeue")
    assert not await page.enabled("#requeue-selected")
