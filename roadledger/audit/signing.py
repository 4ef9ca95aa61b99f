"""Checkpoints as the audit log grows: the API opens the log when it starts, then signs its
head every ``audit_checkpoint_interval_ms`` (nothing when it did not grow) until it stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg

from chain.note_signers import NoteSigner
from roadledger.audit.log import open_log, sign_head

__all__ = ["audit_log_signing"]

log = logging.getLogger("roadledger.audit")


async def _keep_signing(pool: asyncpg.Pool, signer: NoteSigner, interval_s: float) -> None:
    failing = False
    while True:
        await asyncio.sleep(interval_s)  # a period, not a wait for some other task
        try:
            async with pool.acquire() as conn:
                await sign_head(conn, signer)
        except (asyncpg.PostgresError, OSError) as exc:
            if not failing:  # one line per outage, not one per interval
                log.warning("audit checkpoint not signed: %s", exc)
            failing = True
        else:
            failing = False


@asynccontextmanager
async def audit_log_signing(
    pool: asyncpg.Pool, signer: NoteSigner, interval_s: float
) -> AsyncIterator[None]:
    """Open the audit log (origin ``signer.name``) and sign checkpoints while inside."""
    async with pool.acquire() as conn:
        await open_log(conn, signer)
    task = asyncio.create_task(_keep_signing(pool, signer, interval_s), name="audit-checkpoints")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
