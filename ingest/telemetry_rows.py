"""Decoding verified records into the rows the store writer stages (no signature checks).

Records on ``telemetry.verified`` were verified by the verifier, so this module only reads them:
it splits the compact JWS, base64url-decodes and JSON-parses the payload, and takes the fields.
That is about five times cheaper than :meth:`chain.telemetry.TelemetryMessage.from_bytes`, whose
full schema validation the verifier already did. Each value is still checked against the
column it goes to (integers in :data:`chain.telemetry.RANGES`, ids matching
:data:`chain.telemetry.DEVICE_ID_RE`), because one value that PostgreSQL refuses would fail the
whole COPY and stall the writer on that batch forever: such a record is counted as
``undecodable`` and skipped instead.

Device key records (:data:`chain.entries.DEVICE_KEY_ENTRY_PREFIX`) share the topic with
telemetry (they are ledger entries too) and are skipped and counted.

Timestamps are staged as integer milliseconds; the INSERT turns them into ``timestamptz``.
``recv_ts`` is when the bridge received the message (the verifier forwards it in a header).
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from chain.entries import DEVICE_KEY_ENTRY_PREFIX, DOCUMENT_ENTRY_PREFIX, RULES_ENTRY_PREFIX
from chain.hashing import leaf_hash
from chain.telemetry import DEVICE_ID_RE, MAX_OBS, RANGES
from contracts.map_matching import SegmentIndex
from contracts.topics import recv_ms_of
from roadledger.stream.base import StreamRecord

__all__ = [
    "OBSERVATION_COLUMNS",
    "TELEMETRY_COLUMNS",
    "DecodedBatch",
    "ObservationRow",
    "TelemetryRow",
    "decode_records",
]

MS_PER_DAY: Final = 86_400_000

TELEMETRY_COLUMNS: Final = (
    "device_id", "seq", "ts_ms", "recv_ms", "odo_m", "lat_e7", "lon_e7", "spd_cms", "hdg_cdeg",
    "segment_id", "leaf_hash",
)  # fmt: skip
OBSERVATION_COLUMNS: Final = (
    "rsu_id", "seq", "obs_index", "ts_ms", "vehicle_id", "obs_ts_ms", "lat_e7", "lon_e7",
    "segment_id", "leaf_hash",
)  # fmt: skip

TelemetryRow = tuple[
    str, int, int, int, int | None, int, int, int | None, int | None, int | None, bytes
]
ObservationRow = tuple[str, int, int, int, str, int, int, int, int | None, bytes]

_B64URL_TO_B64: Final = bytes.maketrans(b"-_", b"+/")
_SEQ, _TS, _ODO = RANGES["seq"], RANGES["ts"], RANGES["odo_m"]
_LAT, _LON = RANGES["lat_e7"], RANGES["lon_e7"]
_SPD, _HDG = RANGES["spd_cms"], RANGES["hdg_cdeg"]
_VEHICLE_INTS: Final = ("seq", "ts", "odo_m", "lat_e7", "lon_e7", "spd_cms", "hdg_cdeg")
_decode_json = json.JSONDecoder().decode


class _Undecodable(Exception):
    """A record this module cannot turn into rows (the verifier should never pass one)."""


@dataclass(slots=True)
class DecodedBatch:
    """Rows of one batch, in record order, and what was skipped."""

    telemetry: list[TelemetryRow] = field(default_factory=list)
    observations: list[ObservationRow] = field(default_factory=list)
    device_key_entries: int = 0
    undecodable: int = 0
    unmatched: int = 0
    """Telemetry rows and observations not within reach of any road segment."""
    problems: list[str] = field(default_factory=list)
    """One line per undecodable record (topic/partition@offset: why), for the log."""

    def days(self) -> set[int]:
        """UTC days (days since 1970-01-01) of every row's partitioning timestamp."""
        days = {row[2] // MS_PER_DAY for row in self.telemetry}
        days.update(row[3] // MS_PER_DAY for row in self.observations)
        return days


def _int(payload: dict[str, Any], name: str, bounds: tuple[int, int]) -> int:
    value = payload[name]
    # type() and not isinstance(): true is an int and must not become 1.
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        raise _Undecodable(f"{name}: {value!r:.30} is not an integer in {bounds}")
    return value


def _explain(payload: dict[str, Any], names: tuple[str, ...]) -> _Undecodable:
    """The error for the first field of ``names`` that is not a valid integer."""
    for name in names:
        _int(payload, name, RANGES[name])
    return _Undecodable("fields out of range")  # pragma: no cover - the loop raised


def _id(value: object, name: str) -> str:
    if type(value) is not str or not DEVICE_ID_RE.fullmatch(value):
        raise _Undecodable(f"{name}: not a device id")
    return value


def _payload(raw: bytes) -> dict[str, Any]:
    parts = raw.split(b".", 2)
    if len(parts) != 3 or not parts[0]:
        raise _Undecodable("not a compact JWS")
    segment = parts[1]
    try:
        decoded = binascii.a2b_base64(
            segment.translate(_B64URL_TO_B64) + b"=" * (-len(segment) % 4), strict_mode=True
        )
        # str, not bytes: json.loads would sniff the encoding of bytes first.
        payload = _decode_json(decoded.decode("ascii"))
    except (binascii.Error, ValueError) as exc:
        raise _Undecodable(f"payload: {exc}") from None
    if type(payload) is not dict:
        raise _Undecodable("payload is not a JSON object")
    return payload


def decode_records(
    records: Iterable[StreamRecord],
    segments: SegmentIndex | None = None,
    *,
    now_ms: int | None = None,
) -> DecodedBatch:
    """Rows for every telemetry record; skip (and count) device key entries and bad records.

    ``recv_ms`` is when the bridge received the message (the verifier's ``recv_ms`` header),
    else the record's stream timestamp, else ``now_ms`` (default: the clock).
    """
    batch = DecodedBatch()
    fallback_ms = int(time.time() * 1000) if now_ms is None else now_ms
    telemetry, observations = batch.telemetry, batch.observations
    nearest = segments.nearest if segments is not None and len(segments) else None
    for record in records:
        raw = record.value
        if raw.startswith((DEVICE_KEY_ENTRY_PREFIX, RULES_ENTRY_PREFIX, DOCUMENT_ENTRY_PREFIX)):
            batch.device_key_entries += 1  # ledger only
            continue
        try:
            p = _payload(raw)
            dev = _id(p["dev"], "dev")
            recv = recv_ms_of(record) or fallback_ms
            if "obs" not in p:  # a vehicle: the hot path, checked in one expression
                seq, ts, odo = p["seq"], p["ts"], p["odo_m"]
                lat, lon, spd, hdg = p["lat_e7"], p["lon_e7"], p["spd_cms"], p["hdg_cdeg"]
                if not (
                    type(seq) is type(ts) is type(odo) is type(lat) is int
                    and type(lon) is type(spd) is type(hdg) is int
                    and _SEQ[0] <= seq <= _SEQ[1]
                    and _TS[0] <= ts <= _TS[1]
                    and _ODO[0] <= odo <= _ODO[1]
                    and _LAT[0] <= lat <= _LAT[1]
                    and _LON[0] <= lon <= _LON[1]
                    and _SPD[0] <= spd <= _SPD[1]
                    and _HDG[0] <= hdg <= _HDG[1]
                ):
                    raise _explain(p, _VEHICLE_INTS)
                segment = nearest(lat, lon, hdg) if nearest else None
                telemetry.append(
                    (dev, seq, ts, recv, odo, lat, lon, spd, hdg, segment, leaf_hash(raw))
                )
            else:
                seq, ts = _int(p, "seq", _SEQ), _int(p, "ts", _TS)
                lat, lon = _int(p, "lat_e7", _LAT), _int(p, "lon_e7", _LON)
                digest = leaf_hash(raw)
                rows = _observations(p["obs"], dev, seq, ts, digest, nearest)
                segment = nearest(lat, lon) if nearest else None
                telemetry.append((dev, seq, ts, recv, None, lat, lon, None, None, segment, digest))
                observations.extend(rows)
                batch.unmatched += sum(1 for row in rows if row[8] is None)
        except (_Undecodable, KeyError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            batch.undecodable += 1
            batch.problems.append(f"{record.topic}/{record.partition}@{record.offset}: {reason}")
            continue
        if segment is None:
            batch.unmatched += 1
    return batch


def _observations(
    raw_obs: object,
    rsu: str,
    seq: int,
    ts: int,
    digest: bytes,
    nearest: Callable[..., int | None] | None,
) -> list[ObservationRow]:
    if type(raw_obs) is not list or len(raw_obs) > MAX_OBS:
        raise _Undecodable("obs: not an array of at most 64 observations")
    rows: list[ObservationRow] = []
    for index, obs in enumerate(raw_obs):
        if type(obs) is not dict:
            raise _Undecodable("obs: element is not an object")
        lat, lon = _int(obs, "lat_e7", _LAT), _int(obs, "lon_e7", _LON)
        rows.append(
            (rsu, seq, index, ts, _id(obs["veh"], "obs.veh"), _int(obs, "ts", _TS), lat, lon,
             nearest(lat, lon) if nearest else None, digest)
        )  # fmt: skip
    return rows
