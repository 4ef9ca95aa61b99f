"""What analytics reads from a stream record: a vehicle point, an RSU report or a quarantined
record, decoded from ``telemetry.verified`` or ``telemetry.quarantine`` and their headers."""

from __future__ import annotations

import hashlib

from analytics.warnings.checks import RsuReport, Sighting
from analytics.warnings.detectors import Point, QuarantinedRecord
from chain.entries import DEVICE_KEY_ENTRY_PREFIX
from chain.errors import TelemetryError
from chain.hashing import leaf_hash
from chain.telemetry import parse
from contracts.topics import HEADER_REASON, HEADER_SRC, recv_ms_of
from roadledger.stream import StreamRecord

__all__ = ["decode_quarantined", "decode_verified", "header_text"]


def header_text(record: StreamRecord, name: str) -> str | None:
    """The header ``name`` as text (undecodable bytes replaced), or None when absent."""
    value = record.header(name)
    return value.decode("utf-8", "replace") if value is not None else None


def decode_verified(record: StreamRecord) -> Point | RsuReport | None:
    """A verified message as a vehicle point or an RSU report (None: a device key entry, or
    a format analytics does not read)."""
    raw = record.value
    if raw.startswith(DEVICE_KEY_ENTRY_PREFIX):
        return None
    try:
        t = parse(raw).telemetry
    except TelemetryError:
        return None  # the verifier accepted it, so only a format we do not analyse
    recv, leaf, src = recv_ms_of(record), leaf_hash(raw), header_text(record, HEADER_SRC)
    if t.obs is not None:
        sightings = tuple(Sighting(o.veh, o.ts, o.lat_e7, o.lon_e7) for o in t.obs)
        return RsuReport(t.dev, t.seq, t.ts, recv, t.lat_e7, t.lon_e7, sightings, leaf, src)
    if t.odo_m is None:
        return None
    return Point(t.dev, t.seq, t.ts, recv, t.odo_m, t.lat_e7, t.lon_e7, leaf, src,
                 t.spd_cms or 0, t.hdg_cdeg or 0)  # fmt: skip


def decode_quarantined(record: StreamRecord) -> QuarantinedRecord:
    """A quarantined record; seq and ts only when its bytes parse as telemetry."""
    device = (record.key or b"").decode("utf-8", "replace")
    seq = ts = None
    try:
        telemetry = parse(record.value).telemetry
    except TelemetryError:
        pass
    else:
        device, seq, ts = telemetry.dev, telemetry.seq, telemetry.ts
    return QuarantinedRecord(
        device,
        header_text(record, HEADER_REASON) or "unknown",
        seq,
        ts,
        recv_ms_of(record),
        hashlib.sha256(record.value).digest(),
        header_text(record, HEADER_SRC),
    )
