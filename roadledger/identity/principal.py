"""Who is asking: a member logged in, or an organisation's API key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contracts.access import OrgKind, Role, Scope

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request.

    ``subject`` is the member id (``via="session"``) or the API key id (``via="api_key"``);
    ``roles`` are the member's, or those the key was given (never more than its creator's).
    ``session_id`` names the login a session principal came through (for revocation);
    ``scopes`` limits an API key's data reads to those grant scopes (None: no limit).
    ``expires_at`` is when the credential stops being valid (None: not said).
    """

    subject: str
    org_id: str
    org_kind: OrgKind
    roles: frozenset[Role]
    via: Literal["session", "api_key"]
    username: str | None = None
    session_id: str | None = None
    scopes: frozenset[Scope] | None = None
    expires_at: datetime | None = None

    def has(self, *roles: Role) -> bool:
        """True when the caller holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)

    def may_use(self, scope: Scope) -> bool:
        """False when this is an API key restricted to other scopes."""
        return self.scopes is None or scope in self.scopes
