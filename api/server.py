"""uvicorn as RoadLedger runs it: a server whose signals end it cleanly.

uvicorn re-raises SIGTERM after its graceful shutdown, so a process would die of the signal;
a stopped ``roadledger api`` exits 0 like every other command. Inside another program (the
demo) the host handles SIGINT and SIGTERM itself, so the server takes none.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn

__all__ = ["ApiServer"]


class ApiServer(uvicorn.Server):
    """A uvicorn server that stops on SIGINT/SIGTERM without re-raising them
    (``take_signals=False``: leaves them to its host)."""

    def __init__(self, config: uvicorn.Config, *, take_signals: bool = True) -> None:
        super().__init__(config)
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
