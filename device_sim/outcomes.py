"""The expected pipeline outcome of each published message, decided in publish order.

Scenarios say what they intend (``bad_signature`` for a forgery, ``clock_skew`` for a skewed
clock, nothing for a valid message); :class:`OutcomeModel` turns that into what a correct
pipeline does, following its check order: reasons found before deduplication (malformed,
signature, schema, key status, unknown device) always quarantine; then a message whose exact
bytes were stored before is a ``duplicate``; then ``clock_skew``; then a ``(device, seq)``
stored before with other bytes is a ``conflict``; anything else is ``stored``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from chain.errors import RejectReason

__all__ = ["DUPLICATE", "STORED", "OutcomeModel", "quarantine"]

STORED: Final = "stored"
DUPLICATE: Final = "duplicate"
_BEFORE_DEDUPE: Final = frozenset(
    {
        RejectReason.OVERSIZE,
        RejectReason.MALFORMED,
        RejectReason.UNSUPPORTED_ALG,
        RejectReason.BAD_HEADER,
        RejectReason.UNKNOWN_DEVICE,
        RejectReason.BAD_SIGNATURE,
        RejectReason.SCHEMA,
        RejectReason.REVOKED_KEY,
    }
)


def quarantine(reason: RejectReason) -> str:
    """The ``expected`` value of a message quarantined for ``reason``."""
    return f"quarantine:{reason.value}"


class OutcomeModel:
    """Decides outcomes in publish order.

    Only ``tracked`` devices (those a scenario touches) can repeat bytes or seqs, so only
    their stored messages are remembered; every other device's valid message is ``stored``.
    """

    def __init__(self, tracked: Collection[str]) -> None:
        self._tracked = frozenset(tracked)
        self._stored_digests: set[bytes] = set()
        self._stored_seqs: set[tuple[str, int]] = set()

    def decide(
        self, device: str, seq: int | None, digest: bytes, intended: RejectReason | None
    ) -> str:
        """The outcome of the next published message (``seq`` None: not parseable)."""
        if intended in _BEFORE_DEDUPE:
            return quarantine(intended)
        if device not in self._tracked:
            return STORED if intended is None else quarantine(intended)
        if digest in self._stored_digests:
            return DUPLICATE
        if intended is not None:
            return quarantine(intended)
        if seq is None or (device, seq) in self._stored_seqs:
            return quarantine(RejectReason.CONFLICT)
        self._stored_digests.add(digest)
        self._stored_seqs.add((device, seq))
        return STORED
