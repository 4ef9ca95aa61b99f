"""The API application: :func:`create_app` builds it from settings, once, at the entry point.

The lifespan opens the PostgreSQL pool (waiting out a server that is down, one log line),
brings the schema up to date, opens the audit log and signs its checkpoints while it runs;
routes reach the pool and settings through ``api.deps``. It also runs the warnings feed's
listening connection (``api.routes.warning_feed.feed_wakeups``) and the credential listener
that keeps the principal cache true (``api.credentials``). Every route but ``/health`` and
the dashboard's static files (``/ui/``, ``api.ui``) requires authentication
(``tests/integration/api`` checks each one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import errors, ui
from api.credentials import forget_on_writes, watching_credentials
from api.deps import PrincipalDep, document_security
from api.errors import ERROR_RESPONSES
from api.routes import ROUTERS
from api.routes.metrics import RequestCounts, count_requests
from api.routes.warning_feed import feed_wakeups
from roadledger import __version__
from roadledger.audit.log import audit_origin
from roadledger.audit.signing import audit_log_signing
from roadledger.db.ledger_proofs import LedgerProofs
from roadledger.db.pool import wait_for_pool
from roadledger.db.schema import apply_schema
from roadledger.identity.principal_cache import PrincipalCache
from roadledger.log_key import load_log_key
from roadledger.resilience import Dependency
from roadledger.settings import Settings
from roadledger.signer_pool import SignerPool

__all__ = ["create_app"]

log = logging.getLogger("roadledger.api")

DESCRIPTION = """\
RoadLedger's API for authorities, insurers, owners, auditors and witnesses.

Authenticate with `POST /v1/auth/token` (OAuth2 password flow) and send the access token as
`Authorization: Bearer ...`, or send an API key (`X-API-Key: rlk_...`). Every route but
`/health` requires it. Errors are `{"detail": "..."}` with the status saying which kind.
"""


def create_app(settings: Settings, pool: asyncpg.Pool | None = None) -> FastAPI:
    """The API for ``settings``. Without ``pool`` it opens its own when it starts (and closes
    it when it stops); with one (tests, an embedding process) it uses that, schema applied."""

    interval_s = settings.audit_checkpoint_interval_ms / 1000

    @asynccontextmanager
    async def running(app: FastAPI, pool: asyncpg.Pool) -> AsyncIterator[None]:
        """What runs beside the routes on ``pool``: the audit log's signer and the listeners."""
        # The API writes the audit log, so it signs its checkpoints (roadledger/audit/signing).
        audit_signer = load_log_key(settings).signer(audit_origin(settings.origin_prefix))
        app.state.audit_signer = audit_signer
        app.state.pool = pool
        async with (
            audit_log_signing(pool, audit_signer, interval_s),
            watching_credentials(pool, app.state.principals),
            feed_wakeups(app, settings, pool),
        ):
            yield

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.signers = SignerPool()  # started on the first certificate
        try:
            async with _database(app):
                yield
        finally:
            await app.state.signers.close()

    @asynccontextmanager
    async def _database(app: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            async with running(app, pool):
                yield
            return
        database = Dependency("PostgreSQL", log)
        own = await wait_for_pool(settings, asyncio.Event(), database, max_size=10)
        assert own is not None  # the event is never set: uvicorn cancels us to stop
        async with own.acquire() as conn:
            await apply_schema(conn, retention_days=settings.retention_days)
        try:
            async with running(app, own):
                yield
        finally:
            await own.close()

    # No unauthenticated /docs or /openapi.json (and Swagger UI would load from a CDN): the
    # schema is served to authenticated callers at /v1/openapi.json and by `roadledger api
    # openapi`.
    app = FastAPI(
        title="RoadLedger",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.request_counts = RequestCounts()
    app.state.proofs = LedgerProofs(settings.api_tile_cache_mb << 20)
    app.state.principals = PrincipalCache()
    forget_on_writes(app, app.state.principals)
    count_requests(app, app.state.request_counts)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(ui.router)  # the dashboard's files (no data: public)

    def openapi_schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_security(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi_schema  # type: ignore[method-assign]

    @app.get("/v1/openapi.json", tags=["meta"], responses=ERROR_RESPONSES, summary="OpenAPI")
    async def openapi(principal: PrincipalDep) -> JSONResponse:
        """This API's OpenAPI 3.1 description."""
        del principal
        return JSONResponse(app.openapi())

    return app
