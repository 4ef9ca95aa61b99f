"""The dashboard's files at ``/ui/``: our own from ``dashboard/static/``, the front-end
libraries from ``dashboard/node_modules`` through :data:`VENDOR` (an allow-list: nothing else
of node_modules is reachable).

The files hold no data, so they need no authentication; every figure the page shows comes
from the authenticated ``/v1`` API, called by the page with the member's token. Each answer
carries a Content-Security-Policy that lets the page load and connect to this origin only
(no CDN, no inline script), so a page served here cannot send data anywhere else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from contracts.errors import NotFound

__all__ = ["CSP", "DASHBOARD_DIR", "VENDOR", "router"]

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
STATIC_DIR = DASHBOARD_DIR / "static"
MODULES_DIR = DASHBOARD_DIR / "node_modules"

# URL under /ui/vendor/ -> file under dashboard/node_modules (package.json pins the versions).
VENDOR: dict[str, str] = {
    "leaflet/leaflet.js": "leaflet/dist/leaflet-src.esm.js",
    "leaflet/leaflet.css": "leaflet/dist/leaflet.css",
    "uplot/uplot.js": "uplot/dist/uPlot.esm.js",
    "uplot/uplot.css": "uplot/dist/uPlot.min.css",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
# Leaflet and uPlot set element styles from script (allowed: CSSOM, not inline markup);
# tiles are never loaded, markers are vectors; data: images are leaflet.css's own icons.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(root: Path, relative: str) -> FileResponse:
    path = (root / relative).resolve()
    kind = TYPES.get(path.suffix)
    if kind is None or not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound(f"path: no dashboard file /ui/{relative}")
    return FileResponse(path, media_type=kind, headers=HEADERS)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    """The dashboard lives at ``/ui/`` (relative links need the slash)."""
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/vendor/{name:path}")
async def vendor(name: str) -> FileResponse:
    """A front-end library's file named in :data:`VENDOR`, from ``dashboard/node_modules``."""
    if name not in VENDOR:
        raise NotFound(f"path: /ui/vendor/{name} is not a file the dashboard serves")
    if not (MODULES_DIR / VENDOR[name]).is_file():
        raise NotFound(f"path: {VENDOR[name]} is absent: run ./scripts/bootstrap (npm ci)")
    return _file(MODULES_DIR, VENDOR[name])


@router.get("/ui/{name:path}")
async def static(name: str) -> FileResponse:
    """The dashboard's own file ``name`` (``index.html`` for ``/ui/``)."""
    return _file(STATIC_DIR, name or "index.html")
