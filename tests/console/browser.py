"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, with every
blocking call run in a thread so that the server under test, in the test's event loop, answers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the dev extras bring it; without them the browser tests skip
    webdriver = None

BROWSER_READY = webdriver is not None and CHROMIUM.exists() and CHROMEDRIVER.exists()
# Where screenshots go: docs/console/ for `make screenshots`, else the test's temporary folder.
SCREENSHOTS = "SPOOL_SCREENSHOTS"


def start() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


class Page:
    """One browser tab on the console."""

    def __init__(self, driver: WebDriver, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str = "/") -> None:
        await self._run(self.driver.get, self.base + path)

    async def go(self, hash_route: str) -> None:
        """Follows an in-page link (the hash route), as a click does: no reload."""
        await self.script("location.hash = arguments[0]", hash_route)

    async def script(self, js: str, *args: Any) -> Any:
        return await self._run(self.driver.execute_script, js, *args)

    async def fetch(self, method: str, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """A request made by the page itself (its cookies go with it), as a forged one would be."""
        js = """
        const [method, path, body, headers, done] = arguments;
        fetch(path, {method, headers: {"content-type": "application/json", ...headers}, body: JSON.stringify(body)})
          .then(async (r) => done({status: r.status, body: await r.text()}), (e) => done({status: 0, body: String(e)}));
        """
        result: dict[str, Any] = await self._run(self.driver.execute_async_script, js, method, path, body, headers)
        return result

    async def wait(self, condition: Callable[[WebDriver], Any], within: float = 20, what: str = "") -> Any:
        def until() -> Any:
            try:
                return WebDriverWait(self.driver, within, poll_frequency=0.05).until(condition)
            except TimeoutException:
                raise AssertionError(f"not seen within {within}s: {what}\n{self.driver.page_source[:3000]}") from None

        return await self._run(until)

    async def text(self, css: str, within: float = 20) -> str:
        """The text of the first element matching css, once there is one."""

        def found(d: WebDriver) -> str | bool:
            try:
                elements = d.find_elements(By.CSS_SELECTOR, css)
                return elements[0].text if elements else False
            except StaleElementReferenceException:
                return False

        result: str = await self.wait(found, within, css)
        return result

    async def wait_text(self, css: str, expected: str, within: float = 20) -> None:
        def shows(d: WebDriver) -> bool:
            try:
                return any(expected in e.text for e in d.find_elements(By.CSS_SELECTOR, css))
            except StaleElementReferenceException:
                return False

        await self.wait(shows, within, f"{expected!r} in {css}")

    async def element(self, css: str) -> Any:
        """The first element matching css, once there is one."""

        def first(d: WebDriver) -> Any:
            found = d.find_elements(By.CSS_SELECTOR, css)
            return found[0] if found else False

        return await self.wait(first, what=css)

    async def _act(self, css: str, act: Callable[[Any], None]) -> None:
        """Acts on the first element matching css once it is there, again if the page re-rendered
        it meanwhile (a stale or not yet interactable element)."""

        def done(d: WebDriver) -> bool:
            try:
                found = d.find_elements(By.CSS_SELECTOR, css)
                if not found:
                    return False
                act(found[0])
                return True
            except (StaleElementReferenceException, ElementNotInteractableException):
                return False

        await self.wait(done, what=css)

    async def click(self, css: str) -> None:
        await self._act(css, lambda e: e.click())

    async def type(self, css: str, text: str) -> None:
        def typed(e: Any) -> None:
            e.clear()
            e.send_keys(text)

        await self._act(css, typed)

    async def enabled(self, css: str) -> bool:
        element = await self.element(css)
        return bool(await self._run(element.is_enabled))

    async def sign_in(self, key: str) -> None:
        await self.open("/")
        await self.type("#key", key)
        await self.click("form.signin button[type=submit]")
        await self.wait_text("#who", "key ")

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self._run(self.driver.save_screenshot, str(path))
        return path

    async def console_errors(self) -> list[str]:
        """What the page logged at SEVERE, other than failed network requests (refusals the test made)."""
        entries = await self._run(self.driver.get_log, "browser")
        return [e["message"] for e in entries if e["level"] == "SEVERE" and e.get("source") != "network"]


def screenshot_dir(tmp: Path) -> Path:
    chosen = os.environ.get(SCREENSHOTS)
    path = Path(chosen) if chosen else tmp
    path.mkdir(parents=True, exist_ok=True)
    return path
