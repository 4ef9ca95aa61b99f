"""The browser tests' guards catch what they are there to catch: the page's CSP stops a
script's request to another origin (a console error), and a request that got past it would be
aborted and listed by the route interception. Without a login the page shows the login form
and calls no data route."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser

from roadledger.settings import Settings
from tests.integration.dashboard.browser import guarded
from tests.support.served import served_api

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

OUTSIDE = "http://192.0.2.1/tile.png"  # TEST-NET-1: never a real host


async def _reach_out_from_the_page(browser: Browser, url: str, shots: Path) -> None:
    async with guarded(browser, url, shots) as tab:
        requests: list[str] = []
        tab.page.on("request", lambda r: requests.append(r.url))
        await tab.page.goto(f"{url}/ui/")
        await tab.page.wait_for_selector("#login:not([hidden])")
        assert not [r for r in requests if "/v1/" in r]  # no login, no data call
        await tab.shot("login")
        found = await tab.page.evaluate(
            f"() => fetch('{OUTSIDE}').then(() => 'sent', () => 'refused')"
        )
        assert found == "refused"
        assert tab.outside == []  # the CSP stopped it before the network


async def test_requests_to_other_origins_are_refused_and_reported(
    api_settings: Settings, api_pool: asyncpg.Pool, browser: Browser, tmp_path: Path
) -> None:
    async with served_api(api_settings, api_pool) as url:
        with pytest.raises(AssertionError, match=r"console errors: .*Content Security Policy"):
            await _reach_out_from_the_page(browser, url, tmp_path)
        async with guarded(browser, url, tmp_path) as tab:
            page = await tab.page.context.new_page()  # no CSP: about:blank
            result = await page.evaluate(
                f"() => fetch('{OUTSIDE}', {{mode: 'no-cors'}}).then(() => 'sent', () => 'refused')"
            )
            assert result == "refused"
            assert tab.outside == [OUTSIDE]
            tab.outside.clear()
