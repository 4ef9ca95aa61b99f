"""What a ledger entry is: a telemetry message, or a device key record.

A log holds two kinds of entries, told apart by their first bytes:

* a **telemetry message**: the verbatim compact JWS bytes (they start with base64url
  characters, ``eyJ`` in practice, and never contain ``/``);
* a **device key record**: :data:`DEVICE_KEY_ENTRY_PREFIX` followed by the record's canonical
  JSON (:meth:`chain.device_keys.DeviceKey.to_json`, UTF-8);
* a **rules version**: :data:`RULES_ENTRY_PREFIX` followed by the publishing organisation's
  signed rules (a compact JWS, ``contracts/rules/signing.py``);
* an **off-ledger document's hash**: ``roadledger/document/v1\n`` and its record
  (:mod:`chain.documents`).

Key records live in the same log as the messages they vouch for, so whoever trusts the log's
key needs no separate key registry: registering, rotating (a later record of the same device
with another key) and revoking (a record with ``revoked_at_ms``) are all appends.
"""

from __future__ import annotations

from chain.device_keys import DeviceKey
from chain.errors import EncodingError

__all__ = [
    "DEVICE_KEY_ENTRY_PREFIX",
    "DOCUMENT_ENTRY_PREFIX",
    "RULES_ENTRY_PREFIX",
    "device_key_entry",
    "entry_kind",
    "parse_device_key_entry",
]

DEVICE_KEY_ENTRY_PREFIX = b"roadledger/device-key/v1\n"
RULES_ENTRY_PREFIX = b"roadledger/rules/v1\n"
DOCUMENT_ENTRY_PREFIX = b"roadledger/document/v1\n"  # the record: chain.documents


def entry_kind(entry: bytes) -> str:
    """``device-key``, ``rules``, ``document`` or ``telemetry`` (anything else: a telemetry
    JWS, or junk)."""
    if entry.startswith(DEVICE_KEY_ENTRY_PREFIX):
        return "device-key"
    if entry.startswith(RULES_ENTRY_PREFIX):
        return "rules"
    if entry.startswith(DOCUMENT_ENTRY_PREFIX):
        return "document"
    return "telemetry"


def device_key_entry(record: DeviceKey) -> bytes:
    """The log entry for ``record``: the prefix, then its canonical JSON."""
    return DEVICE_KEY_ENTRY_PREFIX + record.to_json().encode("utf-8")


def parse_device_key_entry(entry: bytes) -> DeviceKey:
    """Parse a device key entry; raises :class:`EncodingError` unless it is exactly what
    :func:`device_key_entry` writes (prefix, then canonical JSON, nothing else).

    Canonical form is required so that one record has exactly one entry (and one leaf hash).
    """
    if not entry.startswith(DEVICE_KEY_ENTRY_PREFIX):
        raise EncodingError(
            f"not a device key entry (it does not start with {DEVICE_KEY_ENTRY_PREFIX!r})"
        )
    body = entry[len(DEVICE_KEY_ENTRY_PREFIX) :]
    record = DeviceKey.from_json(body)
    if record.to_json().encode("utf-8") != body:
        raise EncodingError("device key record: not in canonical form (sorted keys, no spaces)")
    return record
