"""What an audit leaf holds: one event, as canonical JSON of ids and codes (no personal data:
a failed login names the member id, or a SHA-256 of a username that is no member's; never the
username or a password)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from enum import StrEnum

from chain.strict_json import dumps_canonical
from roadledger.identity.principal import Principal

__all__ = ["ENTRY_VERSION", "AuditEvent", "EventKind", "by_principal", "username_ref"]

# 2: the leaf holds its own index ``i``, so no two leaves are alike (a ledger log's leaf hashes
# are unique: they name the leaf in proofs by hash); version 1 leaves, before it, had none.
ENTRY_VERSION = 2


class EventKind(StrEnum):
    """The kinds of audited event (the ``event`` of an entry)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    TOKEN_REFRESH = "token_refresh"  # noqa: S105 - an event name
    TOKEN_REVOKE = "token_revoke"  # noqa: S105 - an event name
    API_KEY_CREATE = "api_key_create"
    API_KEY_REVOKE = "api_key_revoke"
    GRANT_CREATE = "grant_create"
    GRANT_REVOKE = "grant_revoke"
    DATA_ACCESS = "data_access"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited event. ``actor`` is a member id, an API key id, or for a failed login of an
    unknown username :func:`username_ref`; ``owner_org`` owns the vehicle read or the grant
    changed; ``grant_id`` is what allowed a read (``"owner"`` or a grant id) or the grant
    changed; ``target`` the session, key or grantee acted on; ``action`` the route;
    ``outcome`` ``ok`` or a failure code."""

    event: EventKind
    actor: str
    actor_org: str | None = None
    via: str | None = None
    owner_org: str | None = None
    device_id: str | None = None
    scope: str | None = None
    grant_id: str | None = None
    target: str | None = None
    action: str | None = None
    outcome: str = "ok"

    def encode(self, at_ms: int, index: int) -> bytes:
        """The leaf at ``index``: canonical JSON of the fields that are set, the time, the
        index and the version."""
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        fields["event"] = str(self.event)
        return dumps_canonical({"v": ENTRY_VERSION, "i": index, "at_ms": at_ms, **fields}).encode()


def username_ref(username: str) -> str:
    """How a failed login names who it tried to be: a hash, never the name itself."""
    return "user-sha256:" + hashlib.sha256(username.encode()).hexdigest()


def by_principal(principal: Principal, event: EventKind, **fields: str | None) -> AuditEvent:
    """An event done by the authenticated ``principal`` (member or API key)."""
    return AuditEvent(
        event=event,
        actor=principal.subject,
        actor_org=principal.org_id,
        via=principal.via,
        **fields,  # type: ignore[arg-type]
    )
