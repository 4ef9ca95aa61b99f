"""One router per resource; :data:`ROUTERS` is what the app mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    audit,
    auth,
    certificates,
    devices,
    documents,
    export,
    grants,
    health,
    ledger,
    metrics,
    organisations,
    positions,
    rules,
    segment_feed,
    segments,
    vehicles,
    warning_feed,
    warnings,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    # The router tries each route in turn (about 5 us each with FastAPI 0.165): the ledger's
    # proofs and checkpoints, what verifiers, monitors and witnesses ask all day, come first.
    ledger.router,
    auth.router,
    organisations.router,
    grants.router,
    audit.router,
    metrics.router,
    rules.router,
    devices.router,
    vehicles.router,
    export.router,
    warning_feed.router,  # before warnings: /stream is not a warning id
    warnings.router,
    segment_feed.router,  # before segments, like the warnings' feed
    segments.router,
    positions.router,
    certificates.router,
    documents.router,
)
