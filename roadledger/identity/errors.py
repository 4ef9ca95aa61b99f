"""What identity and access refuse.

Tree (each class also derives from the domain kind in brackets, ``contracts.errors``)::

    IdentityError                    root
    ├── BadCredentials   [Unauthenticated]  wrong username or password, an unknown, expired or
    │                                       revoked token or API key (which one is not said)
    ├── TooManyLogins    [RateLimited]      too many failed logins for a username or a client
    ├── UnknownOrganisation [NotFound]
    ├── UnknownMember    [NotFound]
    ├── UnknownApiKey    [NotFound]
    ├── UnknownGrant     [NotFound]
    ├── AlreadyExists    [Conflict]         a username or organisation id taken
    ├── BadIdentity      [Invalid]          a malformed id, role, scope, polygon, period
    └── NotPermitted     [Forbidden]        well-formed, but not this principal's to do
"""

from __future__ import annotations

from contracts.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
)

__all__ = [
    "AlreadyExists",
    "BadCredentials",
    "BadIdentity",
    "IdentityError",
    "NotPermitted",
    "TooManyLogins",
    "UnknownApiKey",
    "UnknownGrant",
    "UnknownMember",
    "UnknownOrganisation",
]


class IdentityError(DomainError):
    """Root of identity and access refusals."""


class BadCredentials(IdentityError, Unauthenticated):
    """The credentials do not identify anyone now."""


class TooManyLogins(IdentityError, RateLimited):
    """Logins are paused for this username or client."""


class UnknownOrganisation(IdentityError, NotFound):
    """No such organisation."""


class UnknownMember(IdentityError, NotFound):
    """No such member."""


class UnknownApiKey(IdentityError, NotFound):
    """No such API key in this organisation."""


class UnknownGrant(IdentityError, NotFound):
    """No such grant visible to the caller."""


class AlreadyExists(IdentityError, Conflict):
    """The id or username is taken."""


class BadIdentity(IdentityError, Invalid):
    """A malformed value; the message names the field."""


class NotPermitted(IdentityError, Forbidden):
    """Not this principal's to do."""
