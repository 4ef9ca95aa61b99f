"""Liveness and readiness: the only routes that answer without authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import PoolDep
from api.errors import RETRY_AFTER_S

__all__ = ["router"]

router = APIRouter(tags=["health"])


class HealthPublic(BaseModel):
    """The process answers; ``database`` says whether PostgreSQL does."""

    status: str
    database: str


@router.get("/health", response_model=HealthPublic, summary="Liveness and readiness")
async def health(pool: PoolDep) -> JSONResponse:
    """200 when the API and its database answer, 503 (with Retry-After) when the database
    does not. Needs no authentication."""
    try:
        async with pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, Exception):
        return JSONResponse(
            {"status": "degraded", "database": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return JSONResponse({"status": "ok", "database": "ok"})
