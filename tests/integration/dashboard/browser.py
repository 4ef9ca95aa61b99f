"""Headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; never a browser
Playwright downloads) on the dashboard, with the checks every browser test makes: no console
error, no request leaving loopback (each is aborted and listed), screenshots in the test's
directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright

from tests.integration.api.conftest import PASSWORD

__all__ = ["CHROMIUM", "Guarded", "chromium", "guarded"]

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def executable() -> str:
    """Debian's chromium; the test fails (not skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is absent: ./scripts/bootstrap installs Debian's chromium")
    return str(CHROMIUM)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed after."""
    path = executable()
    async with async_playwright() as playwright:
        # --no-sandbox: tests run as root here, where Chromium's sandbox refuses to start.
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Guarded:
    """A page and what it did wrong: console errors, requests that would have left loopback."""

    page: Page
    shots: Path
    base: str
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors_allowed: list[str] = field(default_factory=list)  # console errors a test expects

    async def shot(self, name: str) -> Path:
        """A full-page screenshot, ``<name>.png`` in the test's directory."""
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path}: an empty screenshot"
        return path

    async def login(self, username: str, password: str = PASSWORD) -> str:
        """Log in through the page's form; the first view's name once it shows."""
        await self.page.goto(f"{self.base}/ui/")
        await self.page.fill("#login input[name=username]", username)
        await self.page.fill("#login input[name=password]", password)
        await self.page.click("#login button[type=submit]")
        await self.page.wait_for_selector("#nav a.active")
        return await self.page.get_attribute("#view", "data-view") or ""

    async def check(self) -> None:
        alerts = [t for t in await self.page.locator("[role=alert]").all_inner_texts() if t]
        assert alerts == [], f"the page shows errors: {alerts}"
        errors = [e for e in self.errors if not any(a in e for a in self.errors_allowed)]
        assert errors == [], f"console errors: {errors}"
        assert self.outside == [], f"requests leaving loopback: {self.outside}"


@asynccontextmanager
async def guarded(browser: Browser, base: str, shots: Path) -> AsyncIterator[Guarded]:
    """A fresh context's page on ``base``, checked (:meth:`Guarded.check`) when the block ends
    without an error."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    found = Guarded(page, shots, base)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            found.errors.append(f"{message.text} at {message.location}")

    async def route(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            found.outside.append(route.request.url)
            await route.abort()

    page.on("console", console)
    page.on("pageerror", lambda error: found.errors.append(f"page error: {error}"))
    await context.route("**/*", route)
    try:
        yield found
        await found.check()
    except BaseException:
        # What the page showed and said when the test failed, to read the failure by.
        await page.screenshot(path=str(shots / "failure.png"), full_page=True)
        print(f"console errors: {found.errors}; outside: {found.outside}; page text:")
        print(await page.inner_text("body"))
        raise
    finally:
        await context.close()
