"""The mileage certificate, format v1: the document and its JSON form.

A certificate is what an insurer is handed to check a vehicle's mileage offline: for one device
and a time range, the verbatim signed messages and the device's key records, each with an RFC
9162 inclusion proof to one cosigned checkpoint, and a summary (distance, gaps, anomalies) that
the verifier recomputes. The format is specified in ``docs/mileage-certificate.md``; the parts
and their checks are in :mod:`chain.certificate_parts`, building one is
:func:`chain.certificate_build.build_certificate`, and verification is
:func:`chain.certificate_verify.verify_certificate`.

Parsing is strict: one UTF-8 JSON object, no duplicate or unknown members, integers only,
canonical base64. Anything the format itself rejects is a :class:`CertificateError` whose item
is ``"format"`` and whose detail names the member (``messages[3].leaf_index: ...``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chain.certificate_json import (
    _MEMBERS,
    _members,
    key_from_dict,
    message_from_dict,
    messages_json,
    summary_from_dict,
    summary_to_dict,
)
from chain.certificate_parts import (
    CertifiedKeyRecord,
    CertifiedMessage,
    _bad,
    check_header,
    check_key_item,
    check_message_item,
    check_summary,
)
from chain.encoding import b64_encode
from chain.errors import CertificateError, EncodingError
from chain.mileage import MileageSummary
from chain.strict_json import loads_object

__all__ = [
    "FORMAT",
    "MileageCertificate",
]

FORMAT = "roadledger/mileage-certificate/v1"


@dataclass(frozen=True)
class MileageCertificate:
    """A parsed certificate: well-formed, NOT verified (see ``verify_certificate``).

    Construction checks types and ranges and raises :class:`CertificateError` (item
    ``"format"``); ``from_json(c.to_json()) == c``.
    """

    device_id: str
    from_ms: int
    to_ms: int
    checkpoint: str
    device_keys: tuple[CertifiedKeyRecord, ...]
    messages: tuple[CertifiedMessage, ...]
    summary: MileageSummary

    def __post_init__(self) -> None:
        check_header(self.device_id, self.from_ms, self.to_ms, self.checkpoint)
        for name, items in (("device_keys", self.device_keys), ("messages", self.messages)):
            if type(items) is not tuple:
                raise _bad(name, f"expected a tuple, got {type(items).__name__}")
            if not items:
                raise _bad(name, "expected at least one element")
        for i, key in enumerate(self.device_keys):
            check_key_item(key, i)
        for i, message in enumerate(self.messages):
            check_message_item(message, i)
        check_summary(self.summary)

    # --- JSON ---------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: str | bytes) -> MileageCertificate:
        """Parse a certificate strictly (see the module docstring)."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        try:
            obj = loads_object(raw, "certificate")
        except EncodingError as exc:
            raise CertificateError("format", str(exc)) from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> MileageCertificate:
        """Build from a decoded JSON object: exact members, version first."""
        if "format" not in obj:
            raise CertificateError("format", f'no "format" member: not a {FORMAT} document')
        if obj["format"] != FORMAT:
            raise CertificateError(
                "format", f"unsupported version {obj['format']!r:.80}; this verifier reads {FORMAT}"
            )
        _members(obj, _MEMBERS, "certificate")
        for name in ("device_keys", "messages"):
            if type(obj[name]) is not list:
                raise _bad(name, "expected an array")
        return cls(
            device_id=obj["device_id"],
            from_ms=obj["from_ms"],
            to_ms=obj["to_ms"],
            checkpoint=obj["checkpoint"],
            device_keys=tuple(key_from_dict(item, i) for i, item in enumerate(obj["device_keys"])),
            messages=tuple(message_from_dict(item, i) for i, item in enumerate(obj["messages"])),
            summary=summary_from_dict(obj["summary"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, members in format order."""
        obj = self._members()
        obj["messages"] = [
            {
                "jws": message.jws,
                "leaf_index": message.leaf_index,
                "inclusion_proof": [b64_encode(h) for h in message.inclusion_proof],
            }
            for message in self.messages
        ]
        return obj

    def _members(self) -> dict[str, Any]:
        """The JSON object but the messages (None in their place, to keep the order)."""
        return {
            "format": FORMAT,
            "device_id": self.device_id,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "checkpoint": self.checkpoint,
            "device_keys": [
                {
                    "entry": b64_encode(key.entry),
                    "leaf_index": key.leaf_index,
                    "inclusion_proof": [b64_encode(h) for h in key.inclusion_proof],
                }
                for key in self.device_keys
            ],
            "messages": None,
            "summary": summary_to_dict(self.summary),
        }

    def to_json(self) -> str:
        """UTF-8 JSON text, indented, ending in a newline; ``from_json`` reads it back equal.

        The text of ``json.dumps(self.to_dict(), indent=2, ensure_ascii=False)``, the messages
        written by :func:`~chain.certificate_json.messages_json`.
        """
        members = [
            f"  {json.dumps(name)}: "
            + (
                messages_json(self.messages)
                if name == "messages"
                # a JSON text has no raw newline inside a string: this indents it one level
                else json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
            )
            for name, value in self._members().items()
        ]
        return "{\n" + ",\n".join(members) + "\n}\n"
