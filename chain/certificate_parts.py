"""The parts of a mileage certificate (:mod:`chain.certificate`) and the checks on their values.

The checks run on construction, whatever the source (JSON text, a file read in bounded memory,
or the builder), so a certificate object is always well-formed. Anything out of type or range
is a :class:`CertificateError` whose item is ``"format"`` and whose detail names the member
(``messages[3].leaf_index: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.checkpoint import MAX_TREE_SIZE
from chain.errors import CertificateError
from chain.hashing import HASH_SIZE
from chain.mileage import Anomaly, Gap, MileageSummary
from chain.telemetry import DEVICE_ID_RE, RANGES

__all__ = [
    "MAX_PROOF_HASHES",
    "CertifiedKeyRecord",
    "CertifiedMessage",
    "check_header",
    "check_key_item",
    "check_message_item",
    "check_summary",
]

MAX_PROOF_HASHES = 64  # a tree of at most 2**64 - 1 leaves has paths of at most 64 nodes

_MS_MAX = 2**53 - 1
_SEQ_LOW, _SEQ_HIGH = RANGES["seq"]
_ODO_HIGH = RANGES["odo_m"][1]
_GAP_MEMBERS = ("after_seq", "before_seq")


def _bad(path: str, detail: str) -> CertificateError:
    return CertificateError("format", f"{path}: {detail}")


@dataclass(frozen=True, slots=True)
class CertifiedKeyRecord:
    """A device key entry (:mod:`chain.entries`) with its inclusion proof."""

    entry: bytes
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class CertifiedMessage:
    """A telemetry message (compact JWS, verbatim) with its inclusion proof."""

    jws: str
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]

    @property
    def raw(self) -> bytes:
        """The JWS bytes: the log entry and the signed text."""
        return self.jws.encode("utf-8", "surrogatepass")


def _check_int(value: object, path: str, low: int, high: int) -> None:
    if type(value) is not int:  # not isinstance: true must not pass for 1
        raise _bad(path, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _bad(path, f"{value} outside [{low}, {high}]")


def _check_str(value: object, path: str) -> None:
    if type(value) is not str:
        raise _bad(path, f"expected a string, got {type(value).__name__}")


def _check_proof(value: object, path: str) -> None:
    if type(value) is not tuple or len(value) > MAX_PROOF_HASHES:
        raise _bad(path, f"expected a tuple of at most {MAX_PROOF_HASHES} hashes")
    if set(map(type, value)) <= {bytes} and set(map(len, value)) <= {HASH_SIZE}:
        return  # the common case in two C passes; the loop names the first bad hash
    for position, digest in enumerate(value):
        if type(digest) is not bytes or len(digest) != HASH_SIZE:
            raise _bad(f"{path}[{position}]", f"expected a {HASH_SIZE}-byte hash")


def check_summary(summary: object) -> None:
    """Check the ``summary`` member: a MileageSummary of valid types and ranges."""
    if type(summary) is not MileageSummary:
        raise _bad("summary", "expected a MileageSummary")
    for name in ("first_seq", "last_seq"):
        _check_int(getattr(summary, name), f"summary.{name}", _SEQ_LOW, _SEQ_HIGH)
    _check_int(summary.message_count, "summary.message_count", 1, _SEQ_HIGH)
    for name in ("odometer_start_m", "odometer_end_m"):
        _check_int(getattr(summary, name), f"summary.{name}", 0, _ODO_HIGH)
    _check_int(summary.distance_m, "summary.distance_m", -_ODO_HIGH, _ODO_HIGH)
    _check_int(summary.gnss_distance_m, "summary.gnss_distance_m", 0, _MS_MAX)
    if type(summary.gaps) is not tuple:
        raise _bad("summary.gaps", "expected a tuple of Gap")
    for i, gap in enumerate(summary.gaps):
        if type(gap) is not Gap:
            raise _bad(f"summary.gaps[{i}]", "expected a Gap")
        for name in _GAP_MEMBERS:
            _check_int(getattr(gap, name), f"summary.gaps[{i}].{name}", _SEQ_LOW, _SEQ_HIGH)
    if type(summary.anomalies) is not tuple:
        raise _bad("summary.anomalies", "expected a tuple of Anomaly")
    for i, anomaly in enumerate(summary.anomalies):
        if type(anomaly) is not Anomaly:
            raise _bad(f"summary.anomalies[{i}]", "expected an Anomaly")
        _check_int(anomaly.seq, f"summary.anomalies[{i}].seq", _SEQ_LOW, _SEQ_HIGH)
        _check_str(anomaly.kind, f"summary.anomalies[{i}].kind")
        _check_str(anomaly.detail, f"summary.anomalies[{i}].detail")


def check_header(device_id: object, from_ms: object, to_ms: object, checkpoint: object) -> None:
    """Check the certificate's scalar members (``format`` errors naming the member)."""
    if type(device_id) is not str or not DEVICE_ID_RE.fullmatch(device_id):
        raise _bad("device_id", f"expected an id matching {DEVICE_ID_RE.pattern}")
    _check_int(from_ms, "from_ms", 0, _MS_MAX)
    _check_int(to_ms, "to_ms", 0, _MS_MAX)
    if from_ms >= to_ms:  # type: ignore[operator]  # both checked to be int just above
        raise _bad("to_ms", f"{to_ms} is not after from_ms {from_ms}")
    _check_str(checkpoint, "checkpoint")


def _check_item(item: object, kind: type, name: str) -> None:
    if type(item) is not kind:
        raise _bad(name, f"expected a {kind.__name__}")
    _check_int(getattr(item, "leaf_index"), f"{name}.leaf_index", 0, MAX_TREE_SIZE - 1)  # noqa: B009
    _check_proof(getattr(item, "inclusion_proof"), f"{name}.inclusion_proof")  # noqa: B009


def check_key_item(item: object, i: int) -> None:
    """Check ``device_keys[i]``: a CertifiedKeyRecord of valid types and ranges."""
    _check_item(item, CertifiedKeyRecord, f"device_keys[{i}]")
    if type(item.entry) is not bytes:  # type: ignore[attr-defined]
        raise _bad(f"device_keys[{i}].entry", "expected bytes")


def check_message_item(item: object, i: int) -> None:
    """Check ``messages[i]``: a CertifiedMessage of valid types and ranges."""
    _check_item(item, CertifiedMessage, f"messages[{i}]")
    _check_str(item.jws, f"messages[{i}].jws")  # type: ignore[attr-defined]
