"""The API process's memory of credentials (:mod:`roadledger.identity.principal_cache`): the
listener that keeps it true while the app runs, and the rule that a request which changes state
empties it before its answer leaves (so a revocation through this process is in force for the
very next request, without waiting for its own notification)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roadledger.identity.principal_cache import PrincipalCache, watch_credentials

__all__ = ["forget_on_writes", "watching_credentials"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _ForgetOnWrite:
    def __init__(self, app: ASGIApp, cache: PrincipalCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.cache.clear()
            await send(message)

        await self.app(scope, receive, sending)


def forget_on_writes(app: FastAPI, cache: PrincipalCache) -> None:
    """Empty ``cache`` when a request other than GET, HEAD or OPTIONS answers (a middleware)."""
    app.add_middleware(_ForgetOnWrite, cache=cache)


@asynccontextmanager
async def watching_credentials(pool: asyncpg.Pool, cache: PrincipalCache) -> AsyncIterator[None]:
    """Keep ``cache`` told of credential changes in ``pool``'s database meanwhile."""
    stopping = asyncio.Event()
    task = asyncio.create_task(watch_credentials(pool, cache, stopping))
    try:
        yield
    finally:
        stopping.set()
        await task
