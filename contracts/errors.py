"""Errors shared across RoadLedger: the domain taxonomy, and the command line's error.

Tree::

    DomainError             root of every refusal the domain makes; a component package's root
    │                       (``RegistryError``, ``RulesError``) derives from it
    ├── NotFound            404  what the request names does not exist (a device, an
    │                            organisation, a key)
    ├── Conflict            409  the request contradicts what is stored; it could succeed
    │                            against another state (a device id taken with another key, a
    │                            version not above the latest)
    ├── Invalid             422  the request itself is malformed or out of bounds, whatever is
    │                            stored (a rules document over a limit, an unknown field)
    ├── Unauthenticated     401  no credentials, or credentials that are wrong, expired or
    │                            revoked (a login, a token, an API key)
    ├── RateLimited         429  too many attempts; ``retry_after_s`` says when to try again
    ├── Forbidden           403  well-formed, but not allowed (a service account's username as a
    │                            device id, rules not signed by a key that may publish them)
    └── Unavailable         503  a service the operation needs cannot be reached; try again

    CommandError            the command line's failure: a message and an exit code

A package raises a class that derives from its own root *and* from one kind, e.g.
``class DeviceNotFound(RegistryError, NotFound)``: ``except RegistryError`` keeps catching
everything the registry refuses, and ``api/`` maps the kinds to the status codes above in one
place, without reading messages. A ``DomainError`` of no kind (stored data that fails its own
checks) is the server's fault: 500.

Component packages that are not part of the domain keep their own roots (``chain.errors``),
and callers translate them at the edge. This module imports nothing: any package may use it.
"""

from __future__ import annotations

__all__ = [
    "CommandError",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
]


class DomainError(Exception):
    """Root of the domain's refusals; the message names the subject and the reason."""


class NotFound(DomainError):
    """What the request names does not exist (HTTP 404)."""


class Conflict(DomainError):
    """The request contradicts the stored state (HTTP 409)."""


class Invalid(DomainError):
    """The request is malformed or out of bounds, whatever the stored state (HTTP 422)."""


class Unauthenticated(DomainError):
    """No credentials, or wrong, expired or revoked ones (HTTP 401)."""


class RateLimited(DomainError):
    """Too many attempts (HTTP 429); try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forbidden(DomainError):
    """The request is well-formed but not allowed (HTTP 403)."""


class Unavailable(DomainError):
    """A service the operation needs cannot be reached now (HTTP 503)."""


class CommandError(Exception):
    """A user-facing failure: one line that names the cause, and an exit code.

    What a subcommand raises for a failure the user can act on; the entry point prints its
    message on one line and exits with its code.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
