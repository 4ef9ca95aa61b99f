"""Errors of ``contracts.rules``: one root, one class per kind of refusal.

Each class is also of a kind of :mod:`contracts.errors` (the status ``api/`` answers with)::

    RulesError                  root (a ValueError too); ``path`` names the field, ``reason``
    │                           says what is wrong with it
    ├── RulesInvalid            Invalid    the document or its signed envelope is malformed or
    │                                      over a bound of ``limits.py``
    ├── RulesNotFound           NotFound   the organisation, or its unrevoked key, is unknown
    ├── RulesConflict           Conflict   a key id already taken, a version not above the
    │                                      latest
    ├── RulesForbidden          Forbidden  the signature does not authorise the document: no
    │                                      such key, it does not verify, the key is revoked or
    │                                      not valid yet, or it is another organisation's key
    └── StoredRulesCorrupt      (no kind)  a stored version fails its own checks: the
                                           database was changed, the server's fault (500)

Only the subclasses are raised; ``except RulesError`` (or ``ValueError``) catches them all.
"""

from __future__ import annotations

from contracts.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

__all__ = [
    "RulesConflict",
    "RulesError",
    "RulesForbidden",
    "RulesInvalid",
    "RulesNotFound",
    "StoredRulesCorrupt",
]


class RulesError(ValueError, DomainError):
    """A rules document or change refused; ``path`` names the field ("" for the whole)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class RulesInvalid(RulesError, Invalid):
    """The document or its signed envelope is malformed or over a bound."""


class RulesNotFound(RulesError, NotFound):
    """The organisation or key named is not registered (or the key is already revoked)."""


class RulesConflict(RulesError, Conflict):
    """The change contradicts what is stored: a key id taken, a version not increasing."""


class RulesForbidden(RulesError, Forbidden):
    """The signature does not authorise the document for its organisation at this time."""


class StoredRulesCorrupt(RulesError):
    """A stored version no longer verifies or matches its row: the database was changed."""
