"""Classify one raw telemetry record: every check that needs only the record and the keys.

:func:`classify_message` is pure (no I/O, no clock: the receive time is an argument), so the
verifier runs it in-process or in worker processes (:mod:`ingest.classifier_pool`) and tests
call it directly. Checks run in this order and the first failure decides the reason:

1. ``oversize``: more than :data:`~chain.jws.MAX_JWS_BYTES` bytes, before any parsing;
2. ``malformed`` / ``unsupported_alg`` / ``bad_header``: the JWS envelope and protected header
   (:meth:`chain.jws.CompactJws.from_bytes`);
3. ``bad_header``: the record key (the device id of the MQTT topic, set by the bridge) is not
   the header ``kid``; a device may only publish under its own topic;
4. ``unknown_device``: no key was ever registered for the device;
5. ``bad_signature``: the signature verifies under none of the device's keys. The key whose
   validity window contains the message's ``ts`` is tried first, then the newest;
6. ``schema`` / ``bad_header``: the payload (:meth:`chain.telemetry.TelemetryMessage.from_jws`:
   members, types, ranges, ``kid`` = ``dev``), and ``schema`` if the message's kind (vehicle or
   RSU) differs from the kind of the key that signed it;
7. ``revoked_key``: the key that signed it was not valid at the message's ``ts`` (revoked
   before it, or not yet valid), or it arrived more than ``revocation_grace_ms`` after the
   key's revocation. A message from before the revocation stays valid only if it arrives
   within that grace: a device's clock is its own, so a thief holding a stolen key can sign
   any ``ts`` before the revocation, and what arrives after it is judged by what was known
   then (the grace is for messages a genuine device buffered while offline). Needs a
   schema-valid ``ts``, hence after 6, as in :meth:`chain.device_keys.DeviceKey.verify_message`;
8. ``clock_skew``: ``ts`` more than ``clock_skew_ms`` after the receive time, or the message
   more than ``max_message_age_ms`` old when received.

What passes is :class:`Accepted`: the device, seq and hash that deduplication
(:mod:`ingest.dedupe`) decides on next (``duplicate``, ``conflict``, or forwarded), with the
``prev`` link, the signing key and ``ts`` that the hash-chain check and the rule on claims of
revoked keys need (:mod:`ingest.chain_links`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from chain.device_keys import DeviceKey
from chain.encoding import b64url_decode
from chain.errors import RejectReason, TelemetryError
from chain.jws import MAX_JWS_BYTES, CompactJws
from chain.telemetry import TelemetryMessage

if TYPE_CHECKING:  # worker processes import this module: keep it light
    from roadledger.settings import Settings

__all__ = [
    "MAX_DETAIL_CHARS",
    "Accepted",
    "ClassifyInput",
    "Limits",
    "Rejected",
    "Verdict",
    "classify_chunk",
    "classify_message",
    "device_id_of",
    "one_line",
]

MAX_DETAIL_CHARS = 300
"""Details travel in a Kafka header and in logs: one line, bounded."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How far a device clock may be from the receive time (``Settings`` fields of that name)."""

    clock_skew_ms: int
    max_message_age_ms: int
    revocation_grace_ms: int = 300_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured by ``ROADLEDGER_CLOCK_SKEW_MS``, ``_MAX_MESSAGE_AGE_MS`` and
        ``_REVOCATION_GRACE_MS``."""
        return cls(
            settings.clock_skew_ms, settings.max_message_age_ms, settings.revocation_grace_ms
        )


class ClassifyInput(NamedTuple):
    """What classification needs of one record (a tuple: it is pickled to worker processes)."""

    value: bytes
    key: bytes | None
    recv_ms: int


# Verdicts are tuples: they cross the process boundary by the thousand, and a NamedTuple
# pickles several times faster than a dataclass.


class Accepted(NamedTuple):
    """Passed every per-message check; deduplication decides what happens next.

    ``prev``: the 32-byte hash the message names as its predecessor (empty for seq 1);
    ``key_id``: the key that signed it; ``ts``: its device time.
    """

    device_id: str
    seq: int
    message_hash: bytes
    prev: bytes = b""
    key_id: str = ""
    ts: int = 0


class Rejected(NamedTuple):
    """Quarantined for ``reason``; ``detail`` is one line without secrets.

    ``internal`` marks a verifier bug met on this input (quarantined as ``malformed`` rather
    than crashing on the same record forever); the verifier logs those loudly.
    """

    reason: RejectReason
    detail: str
    internal: bool = False


Verdict = Accepted | Rejected


def one_line(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` with control characters replaced and cut to ``limit`` characters."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def device_id_of(record_key: bytes | None) -> str | None:
    """The device id a record key names (None: no key, or not UTF-8)."""
    if record_key is None:
        return None
    try:
        return record_key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_record_key(record_key: bytes | None, kid: str) -> None:
    if record_key is None:
        raise TelemetryError(RejectReason.BAD_HEADER, f"record has no key; kid is {kid!r:.80}")
    if device_id_of(record_key) != kid:
        shown = record_key.decode("utf-8", "backslashreplace")
        raise TelemetryError(
            RejectReason.BAD_HEADER,
            f"published under device {shown!r:.80} but signed as kid {kid!r:.80}",
        )


def _peek_ts(payload: bytes) -> int | None:
    """The payload's ``ts`` if it plainly has one; only to choose which key to try first."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    ts = obj.get("ts") if isinstance(obj, dict) else None
    return ts if type(ts) is int else None


def _valid_at(key: DeviceKey, ts: int) -> bool:
    return key.valid_from_ms <= ts and (key.revoked_at_ms is None or ts < key.revoked_at_ms)


def _candidates(jws: CompactJws, keys: Sequence[DeviceKey]) -> list[DeviceKey]:
    """The device's keys in the order to try: valid at the message's ts first, then newest."""
    newest_first = sorted(keys, key=lambda k: k.valid_from_ms, reverse=True)
    if len(keys) == 1:
        return newest_first
    ts = _peek_ts(jws.payload)
    if ts is None:
        return newest_first
    return sorted(newest_first, key=lambda k: not _valid_at(k, ts))  # stable


def _signing_key(jws: CompactJws, keys: Sequence[DeviceKey]) -> DeviceKey:
    tried: set[bytes] = set()
    signing_input = jws.signing_input
    for key in _candidates(jws, keys):
        raw = key.public_key.raw
        if raw in tried:  # one key registered twice (other windows): verify once
            continue
        tried.add(raw)
        if key.public_key.is_valid_signature(jws.signature, signing_input):
            return key
    kid = jws.header.kid
    raise TelemetryError(
        RejectReason.BAD_SIGNATURE,
        f"signature does not verify under any of the {len(tried)} key(s) of {kid!r:.80}",
    )


def _check_arrival_after_revocation(key: DeviceKey, ts: int, recv_ms: int, limits: Limits) -> None:
    revoked = key.revoked_at_ms
    if revoked is not None and recv_ms >= revoked + limits.revocation_grace_ms:
        raise TelemetryError(
            RejectReason.REVOKED_KEY,
            f"{key.device_id}: key {key.key_id} revoked at {revoked}; message ts {ts} arrived at "
            f"{recv_ms}, past the {limits.revocation_grace_ms} ms grace for buffered messages",
        )


def _check_clock(ts: int, recv_ms: int, limits: Limits) -> None:
    if ts > recv_ms + limits.clock_skew_ms:
        raise TelemetryError(
            RejectReason.CLOCK_SKEW,
            f"ts {ts} is {ts - recv_ms} ms after the receive time {recv_ms} "
            f"(at most {limits.clock_skew_ms} allowed)",
        )
    if recv_ms - ts > limits.max_message_age_ms:
        raise TelemetryError(
            RejectReason.CLOCK_SKEW,
            f"ts {ts} is {recv_ms - ts} ms before the receive time {recv_ms} "
            f"(at most {limits.max_message_age_ms} allowed)",
        )


def _classify(
    value: bytes, record_key: bytes | None, keys: Sequence[DeviceKey], recv_ms: int, limits: Limits
) -> Verdict:
    if len(value) > MAX_JWS_BYTES:
        return Rejected(RejectReason.OVERSIZE, f"{len(value)} bytes, limit is {MAX_JWS_BYTES}")
    try:
        jws = CompactJws.from_bytes(value)
        kid = jws.header.kid
        assert kid is not None  # from_bytes requires a kid
        _check_record_key(record_key, kid)
        if not keys:
            raise TelemetryError(RejectReason.UNKNOWN_DEVICE, f"no key registered for {kid!r:.80}")
        key = _signing_key(jws, keys)
        message = TelemetryMessage.from_jws(jws)
        telemetry = message.telemetry
        if telemetry.kind is not key.kind:
            raise TelemetryError(
                RejectReason.SCHEMA,
                f"{telemetry.kind} message signed by the {key.kind} key {key.key_id}",
            )
        key.check_valid_at(telemetry.ts)
        _check_arrival_after_revocation(key, telemetry.ts, recv_ms, limits)
        _check_clock(telemetry.ts, recv_ms, limits)
    except TelemetryError as exc:
        return Rejected(exc.reason, one_line(exc.detail))
    prev = b64url_decode(telemetry.prev, "prev") if telemetry.prev else b""
    return Accepted(
        telemetry.dev, telemetry.seq, message.message_hash, prev, key.key_id, telemetry.ts
    )


def classify_message(
    value: bytes,
    record_key: bytes | None,
    keys: Sequence[DeviceKey],
    recv_ms: int,
    limits: Limits,
) -> Verdict:
    """Classify one raw record (see the module docstring for the checks and their order).

    ``record_key``: the Kafka record key (the device id the bridge took from the MQTT topic).
    ``keys``: every key ever registered for that device, revoked ones included (empty:
    unknown device). ``recv_ms``: when the bridge received the message.

    Never raises: an unexpected error on some input is a :class:`Rejected` with ``internal``
    set, so one poisonous record cannot stop its partition.
    """
    try:
        return _classify(value, record_key, keys, recv_ms, limits)
    except Exception as exc:  # a bug in our checks must not block the partition forever
        return Rejected(
            RejectReason.MALFORMED,
            one_line(f"internal error in the verifier: {type(exc).__name__}: {exc}"),
            internal=True,
        )


def classify_chunk(
    items: Sequence[ClassifyInput], keys: Mapping[str, Sequence[DeviceKey]], limits: Limits
) -> list[Verdict]:
    """:func:`classify_message` for each item; ``keys`` maps device ids (record keys) to keys.

    The unit of work sent to a worker process: one call per chunk, not per message.
    """
    verdicts: list[Verdict] = []
    for value, record_key, recv_ms in items:
        device_id = device_id_of(record_key)
        device_keys = keys.get(device_id, ()) if device_id is not None else ()
        verdicts.append(classify_message(value, record_key, device_keys, recv_ms, limits))
    return verdicts
