"""uvicorn as RoadLedger runs it: a server whose signals end it cleanly and at once.

- uvicorn re-raises SIGTERM after its graceful shutdown, so a process would die of the signal;
  a stopped ``roadledger api`` exits 0 like every other command. Inside another program (the
  demo) the host handles SIGINT and SIGTERM itself, so the server takes none
  (``take_signals=False``).
- uvicorn stops by waiting for every open response to finish; a live feed never does. The
  server sets ``app.state.stopping`` (:func:`stopping`) first, so the feeds end their
  responses cleanly (``api/routes/warning_feed.py``) and the server exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer", "stopping"]


def stopping(app: FastAPI) -> asyncio.Event:
    """The event set when the server serving ``app`` begins to stop."""
    event: asyncio.Event | None = getattr(app.state, "stopping", None)
    if event is None:
        event = app.state.stopping = asyncio.Event()
    return event


class ApiServer(uvicorn.Server):
    """uvicorn's server for ``app`` (see the module docstring)."""

    def __init__(self, app: FastAPI, config: uvicorn.Config, *, take_signals: bool = True) -> None:
        super().__init__(config)
        self._app = app
        self.take_signals = take_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.take_signals:
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stopping(self._app).set()
        await super().shutdown(sockets)
