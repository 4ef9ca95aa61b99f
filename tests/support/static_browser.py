"""Headless Chromium on a page served from ``dashboard/static`` on loopback, for browser tests.

:func:`static_server` serves a directory with a plain HTTP server on 127.0.0.1 (with the strict
``script-src 'self'`` policy a deployment would send), :func:`chromium_page` opens Debian's
``/usr/bin/chromium`` through Playwright (``executable_path``; never a downloaded browser) and
records console errors, page errors and every request that would leave loopback (it is
aborted). Used by the in-browser verifier's tests and ``bench/browser_verify.py``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.integration.conftest import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

__all__ = ["CHROMIUM", "PageRecord", "chromium_missing", "chromium_page", "static_server"]

CHROMIUM = Path(os.environ.get("ROADLEDGER_CHROMIUM", "/usr/bin/chromium"))
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'none'; object-src 'none'"
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class _Handler(SimpleHTTPRequestHandler):
    def guess_type(self, path: str | os.PathLike[str]) -> str:
        # Module scripts need a JavaScript type, whatever the platform's mime table says.
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port); yield its base URL, ending in ``/``."""
    handler = functools.partial(_Handler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium, or set ROADLEDGER_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (./scripts/bootstrap installs the test extras)"
    return None


@dataclass
class PageRecord:
    """What a page did besides rendering: console errors, page errors, requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@contextmanager
def chromium_page() -> Iterator[tuple[Page, PageRecord]]:
    """A fresh page of headless Chromium; requests off loopback are aborted and recorded."""
    from playwright.sync_api import sync_playwright

    record = PageRecord()

    def guard(route: Route) -> None:
        url = route.request.url
        record.requests.append(url)
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme in ("data", "blob") or host in _LOOPBACK:
            route.continue_()
        else:
            record.blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", guard)
            page.on(
                "console",
                lambda m: record.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: record.page_errors.append(str(e)))
            yield page, record
        finally:
            browser.close()
