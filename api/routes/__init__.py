"""One router per resource; :data:`ROUTERS` is what the app mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import auth, grants, health, organisations, segments, warning_feed, warnings

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    auth.router,
    organisations.router,
    grants.router,
    warning_feed.router,  # before warnings: /stream is not a warning id
    warnings.router,
    segments.router,
)
