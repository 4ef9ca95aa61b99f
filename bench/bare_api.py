"""The limit of ``bench/api_load.py``: a bare FastAPI app with one trivial route, served by uvicorn
as ``roadledger api serve`` serves the real API (one process, uvicorn's default event loop
and HTTP parser, no proxy headers, warnings only in the log)::

    .venv/bin/python -m uvicorn --app-dir bench bare_api:app --port 8000 \\
        --log-level warning --no-proxy-headers
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["app"]

app = FastAPI(title="bare")


@app.get("/health")
async def health() -> dict[str, str]:
    """What every request of the benchmark asks: no database, no authentication."""
    return {"status": "ok"}
