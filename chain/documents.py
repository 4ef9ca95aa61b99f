"""Off-ledger documents: the ledger entry that fixes a document's SHA-256 to a vehicle.

The document itself (an inspection report, an invoice) stays with its owner; the log holds
:data:`DOCUMENT_ENTRY_PREFIX` followed by the record's canonical JSON (sorted keys, no
spaces)::

    roadledger/document/v1
    {"device_id":"veh-0042","document_id":"doc_...","kind":"inspection","org_id":"fleet-a",
     "registered_at_ms":1767225600000,"sha256":"<64 lowercase hex>","v":1}

Whoever holds the document hashes it, finds that hash in the entry and checks the entry's
inclusion proof against a checkpoint: the document existed, unchanged, when it was logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chain.entries import DOCUMENT_ENTRY_PREFIX
from chain.errors import EncodingError
from chain.strict_json import dumps_canonical, loads_object

__all__ = ["DOCUMENT_ENTRY_PREFIX", "DocumentRecord", "document_entry", "parse_document_entry"]

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KIND = re.compile(r"^[a-z0-9_-]{1,40}$")
_FIELDS = frozenset(
    {"device_id", "document_id", "kind", "org_id", "registered_at_ms", "sha256", "v"}
)


@dataclass(frozen=True)
class DocumentRecord:
    """A document's hash registered for a vehicle by an organisation at a time."""

    device_id: str
    document_id: str
    kind: str
    org_id: str
    registered_at_ms: int
    sha256: str

    def __post_init__(self) -> None:
        for name in ("device_id", "document_id", "org_id"):
            if not _ID.match(getattr(self, name)):
                raise EncodingError(f"document record: {name} is not an id")
        if not _KIND.match(self.kind):
            raise EncodingError("document record: kind must be 1-40 of a-z, 0-9, _ and -")
        if not _SHA256.match(self.sha256):
            raise EncodingError("document record: sha256 must be 64 lowercase hex digits")
        if isinstance(self.registered_at_ms, bool) or not 0 <= self.registered_at_ms < 1 << 63:
            raise EncodingError("document record: registered_at_ms out of range")

    def to_json(self) -> str:
        return dumps_canonical(
            {
                "device_id": self.device_id,
                "document_id": self.document_id,
                "kind": self.kind,
                "org_id": self.org_id,
                "registered_at_ms": self.registered_at_ms,
                "sha256": self.sha256,
                "v": 1,
            }
        )


def document_entry(record: DocumentRecord) -> bytes:
    """The log entry of ``record``: the prefix, then its canonical JSON."""
    return DOCUMENT_ENTRY_PREFIX + record.to_json().encode("utf-8")


def parse_document_entry(entry: bytes) -> DocumentRecord:
    """Read an entry :func:`document_entry` wrote; anything else is :class:`EncodingError`."""
    if not entry.startswith(DOCUMENT_ENTRY_PREFIX):
        raise EncodingError("not a document entry")
    body = entry[len(DOCUMENT_ENTRY_PREFIX) :]
    obj = loads_object(body, "document record")
    if set(obj) != _FIELDS or obj["v"] != 1:
        raise EncodingError(f"document record: members must be {sorted(_FIELDS)}, v 1")
    try:
        record = DocumentRecord(**{k: v for k, v in obj.items() if k != "v"})
    except TypeError:
        raise EncodingError("document record: a member has the wrong type") from None
    if record.to_json().encode("utf-8") != body:
        raise EncodingError("document record: not in canonical form")
    return record
