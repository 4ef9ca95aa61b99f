"""One router per resource; :data:`ROUTERS` is what the app mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import auth, certificates, documents, grants, health, ledger, organisations

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    auth.router,
    organisations.router,
    grants.router,
    ledger.router,
    certificates.router,
    documents.router,
)
