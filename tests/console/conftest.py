"""spoold with keys required and the console on its HTTP port; keys of each kind; an HTTP client
that keeps cookies as a browser does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from spoold.config import Settings
from tests.auth.conftest import make_key
from tests.console.browser import BROWSER_READY, Page, screenshot_dir, start
from tests.http.conftest import base, http_settings

__all__ = ["base"]  # the HTTP door's fixture: the console's address


@pytest.fixture
def settings() -> Settings:
    return http_settings(
        auth="required",
        console_feed_interval=timedelta(milliseconds=200),
        key_cache_ttl=timedelta(milliseconds=500),
    )


@dataclass(frozen=True)
class Keys:
    admin: str
    read: str
    work: str


@pytest.fixture
async def keys(db: asyncpg.Connection) -> Keys:
    return Keys(
        admin=await make_key(db, ["admin"], name="on-call"),
        read=await make_key(db, ["read"], name="viewer"),
        work=await make_key(db, ["work"], name="worker"),
    )


@pytest.fixture
async def web(base: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with a cookie jar, like a browser tab (no Authorization header of its own)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        yield c


async def sign_in(web: httpx.AsyncClient, key: str) -> str:
    """Signs in; returns the CSRF token the page would read from its cookie."""
    answer = await web.post("/console/session", json={"key": key})
    assert answer.status_code == 200, answer.text
    return str(web.cookies["spool_csrf"])


@pytest.fixture
async def page(base: str, tmp_path: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium on the console (skipped where Chromium is not installed)."""
    if not BROWSER_READY:
        pytest.skip("needs selenium and Debian's chromium and chromium-driver (.ci/run installs them)")
    driver = await asyncio.to_thread(start)
    try:
        yield Page(driver, base, screenshot_dir(tmp_path))
    finally:
        await asyncio.to_thread(driver.quit)
