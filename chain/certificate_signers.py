"""Which certified key signed each message of a certificate: its Ed25519 work, on its own.

Verifying a certificate checks one Ed25519 signature per message, about half of its time.
:func:`find_signers` is that work as a pure function of the messages' bytes and the keys, so a
caller may run it ahead and elsewhere (the API runs it in a second process while it reads the
proofs and builds the certificate) and hand the result to ``verify_certificate`` as
:class:`KnownSigners`. The verifier uses an answer only for the very keys, in the very order,
it tries itself (:func:`key_order`), so the result is the one its own check would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chain.certificate_checks import effective_keys
from chain.encoding import b64url_decode
from chain.entries import parse_device_key_entry
from chain.errors import ChainError
from chain.keys import Ed25519PublicKey

__all__ = ["KnownSigners", "find_signers", "key_order"]


@dataclass(frozen=True)
class KnownSigners:
    """For each message (its JWS bytes): the index in ``keys`` of the first key its signature
    verifies under, or None for none. Trusted by the verifier: only a caller that computed it
    with :func:`find_signers` may pass it."""

    keys: tuple[bytes, ...]
    """Raw public keys, in the order they were tried."""
    signers: Mapping[bytes, int | None]


def key_order(key_entries: Iterable[tuple[bytes, int]]) -> tuple[bytes, ...]:
    """The raw public keys the verifier tries for these key records ``(entry, leaf index)``,
    in its order; empty when an entry is malformed (the builder will say which)."""
    try:
        records = [parse_device_key_entry(entry) for entry, _ in sorted(key_entries, key=_leaf)]
    except ChainError:
        return ()
    return tuple(record.public_key.raw for record in effective_keys(records))


def _leaf(pair: tuple[bytes, int]) -> int:
    return pair[1]


def find_signers(raws: Sequence[bytes], keys: Sequence[bytes]) -> list[int | None]:
    """For each compact JWS of ``raws``: the index of the first of ``keys`` (raw public keys)
    its signature verifies under, as ``signing_key`` finds it; None when none does or the
    signature segment does not decode (the JWS fails to parse anyway)."""
    public_keys = [Ed25519PublicKey(key) for key in keys]
    found: list[int | None] = []
    for raw in raws:
        signing_input, _, segment = raw.rpartition(b".")
        try:
            signature = b64url_decode(segment, "signature")
        except ChainError:
            found.append(None)
            continue
        found.append(
            next(
                (
                    i
                    for i, key in enumerate(public_keys)
                    if key.is_valid_signature(signature, signing_input)
                ),
                None,
            )
        )
    return found
