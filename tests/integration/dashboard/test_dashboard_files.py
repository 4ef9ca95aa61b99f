"""The dashboard's files as the API serves them (in process, on the real PostgreSQL): public,
with their content types and a self-only Content-Security-Policy; the front-end libraries
from node_modules through the allow-list alone, at the versions package.json pins; no file
names another origin."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.ui import CSP, DASHBOARD_DIR, STATIC_DIR, VENDOR
from roadledger.settings import Settings

pytestmark = [pytest.mark.postgres]

# A static import's specifier, or a dynamic import's: "./x.js", "../x.js", "/ui/...".
IMPORT = re.compile(r"""^import .* from "([./][^"]+)";$|import\("([./][^"]+)"\)""", re.M)


@pytest.fixture
async def ui(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings, api_pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_the_page_is_public_typed_and_locked_to_its_origin(ui: httpx.AsyncClient) -> None:
    moved = await ui.get("/ui")
    assert (moved.status_code, moved.headers["location"]) == (308, "/ui/")
    page = await ui.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP
    assert "connect-src 'self'" in CSP
    assert "unsafe" not in CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="/ui/app.js"' in page.text
    # The data is not: the API refuses the page's first call without a login.
    assert (await ui.get("/v1/auth/me")).status_code == 401


async def test_every_module_the_page_imports_is_served_as_javascript(
    ui: httpx.AsyncClient,
) -> None:
    sources = sorted(STATIC_DIR.rglob("*.js"))
    wanted = {"/ui/app.js"}
    for source in sources:
        relative = source.parent.relative_to(STATIC_DIR)
        for spec in (a or b for a, b in IMPORT.findall(source.read_text())):
            path = spec if spec.startswith("/") else f"/ui/{(relative / spec).as_posix()}"
            wanted.add(re.sub(r"/[^/]+/\.\./", "/", path.replace("/./", "/")))
    assert "/ui/vendor/leaflet/leaflet.js" in wanted
    assert "/ui/views/traffic.js" in wanted
    for path in sorted(wanted):
        answer = await ui.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "text/javascript; charset=utf-8", path


async def test_vendor_files_come_from_the_pinned_packages_and_nothing_else(
    ui: httpx.AsyncClient,
) -> None:
    package = json.loads((DASHBOARD_DIR / "package.json").read_text())
    lock = json.loads((DASHBOARD_DIR / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: pin an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        installed = json.loads((DASHBOARD_DIR / "node_modules" / name / "package.json").read_text())
        assert installed["version"] == version, f"{name}: run ./scripts/bootstrap (npm ci)"
    for url, file in VENDOR.items():
        answer = await ui.get(f"/ui/vendor/{url}")
        assert answer.status_code == 200, url
        assert answer.content == (DASHBOARD_DIR / "node_modules" / file).read_bytes()
        assert answer.headers["content-security-policy"] == CSP
    for refused in (
        "/ui/vendor/leaflet/package.json",
        "/ui/vendor/../../pyproject.toml",
        "/ui/%2e%2e/%2e%2e/pyproject.toml",
        "/ui/..%2f..%2fpyproject.toml",
        "/ui/views",
        "/ui/nothing.js",
    ):
        assert (await ui.get(refused)).status_code == 404, refused


def test_no_dashboard_file_names_another_origin() -> None:
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".html", ".js", ".css"}:
            assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path


def test_node_modules_is_never_committed() -> None:
    ignored = (Path(__file__).parents[3] / ".gitignore").read_text().split()
    assert "/dashboard/node_modules/" in ignored
