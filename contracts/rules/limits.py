"""The bounds of a rules document (docs/rules.md, "Bounds"), each checked before the work it
bounds: sizes before any byte is decoded, counts before any item is checked, the signature
before anything is parsed. A refusal names the field and the limit.

The largest signed document, with its ledger prefix and Kafka's record overhead, stays under
Kafka's default 1 MiB message size (``message.max.bytes``, the producer's
``max_request_size``): a published version must reach the ledger through ``telemetry.verified``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "MAX_DOCUMENT_BYTES",
    "MAX_GEOFENCES",
    "MAX_SIGNED_BYTES",
    "MAX_SPEED_LIMITS",
    "MAX_TOTAL_VERTICES",
    "MAX_VEHICLE_CLASSES",
    "MAX_VERTICES",
    "MAX_WINDOWS",
]

# The JSON document (the signed payload): 760 KiB, room for 34 zones of 1,000 vertices at
# degrees x 1e7 (22 bytes a vertex in compact JSON).
MAX_DOCUMENT_BYTES: Final = 760 * 1024
# The compact JWS: base64url makes the document 4/3 as long; 1016 KiB leaves room for the
# header (a kid is at most 64 characters) and the signature.
MAX_SIGNED_BYTES: Final = 1016 * 1024
MAX_SPEED_LIMITS: Final = 10_000
MAX_GEOFENCES: Final = 100
# Per geofence, and over the document: containment is tested polygon by polygon.
MAX_VERTICES: Final = 1_000
MAX_TOTAL_VERTICES: Final = 40_000
MAX_WINDOWS: Final = 32  # time windows per geofence
MAX_VEHICLE_CLASSES: Final = 32  # per geofence
MAX_DESCRIPTION_CHARS: Final = 4_096
