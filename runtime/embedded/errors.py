"""Errors of the embedded services.

``EmbeddedError`` (a :class:`~runtime.services.process.ServiceError`, hence a
``CommandError``) is the only exception this package raises on purpose. Its message is one line
that names the cause and what to do, e.g. the port in use, the missing unprivileged user, the
missing or unusable PostgreSQL binaries, another process holding the same data directory.
"""

from __future__ import annotations

from runtime.services.process import ServiceError

__all__ = ["EmbeddedError"]


class EmbeddedError(ServiceError):
    """An embedded service could not be started or stopped; the message says why."""
