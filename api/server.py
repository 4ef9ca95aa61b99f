"""Serving the API with uvicorn so that long responses end when the server stops.

uvicorn stops by waiting for every open response to finish; a live feed never does. The
:class:`Server` here sets ``app.state.stopping`` first, so the feeds end their responses
cleanly (``api/routes/warning_feed.py``) and the server exits at once.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from fastapi import FastAPI

__all__ = ["Server", "stopping"]


def stopping(app: FastAPI) -> asyncio.Event:
    """The event set when the server serving ``app`` begins to stop."""
    event: asyncio.Event | None = getattr(app.state, "stopping", None)
    if event is None:
        event = app.state.stopping = asyncio.Event()
    return event


class Server(uvicorn.Server):
    """uvicorn's server, telling the app's live responses to end before it waits for them."""

    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stopping(self._app).set()
        await super().shutdown(sockets)
