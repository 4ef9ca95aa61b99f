"""A worker process for the Ed25519 half of verifying a certificate.

:func:`chain.certificate_signers.find_signers` checks one signature per message, about half
the CPU of a certificate's verification. The API hands it to one spawned worker process as
soon as it has read the messages, and reads the proofs and builds the certificate meanwhile
on its own core; ``verify_certificate`` then takes the answers instead of checking those
signatures itself. The worker is started on first use and kept; if it cannot answer (it died,
or could not start), :meth:`SignerPool.find` returns None and the verifier checks the
signatures itself: slower, never less checked.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from chain.certificate_signers import KnownSigners, find_signers

__all__ = ["SignerPool"]

log = logging.getLogger("roadledger.signer_pool")


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the API stops the worker in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SignerPool:
    """One worker process (spawned, not forked from a process running an event loop) for
    :func:`find_signers`; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self.answered = 0
        """Calls the worker answered (not the ones left to the verifier)."""

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_sigint,
            )
        return self._executor

    async def find(self, raws: Sequence[bytes], keys: tuple[bytes, ...]) -> KnownSigners | None:
        """Who signed each of ``raws`` among ``keys`` (see :func:`key_order`), found in the
        worker; None when the worker could not tell (the caller then checks itself)."""
        if not raws or not keys:
            return None
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._started(), find_signers, list(raws), keys)
        except Exception as exc:  # a dead or unstartable worker: checked in-process instead
            log.warning("signature worker failed (%s); verifying in the API process", exc)
            await self.close()
            return None
        self.answered += 1
        return KnownSigners(keys, dict(zip(raws, found, strict=True)))

    async def close(self) -> None:
        """Stop the worker (after the work under way)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
