"""Decoding verified records into staged rows (ingest.telemetry_rows) and the write counts.

``Signer`` and ``verified_record`` are also used by the store writer's integration tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.hashing import leaf_hash
from chain.keys import Ed25519PrivateKey
from chain.telemetry import (
    RANGES,
    DeviceKind,
    Observation,
    Telemetry,
    TelemetryMessage,
    chain_hash,
    sign_telemetry,
)
from contracts.map_matching import SegmentIndex
from contracts.topics import HEADER_RECV_MS
from ingest.batch_writer import BatchWriter, WriteCounts
from ingest.telemetry_rows import MS_PER_DAY, decode_records
from roadledger.stream import StreamRecord
from tests.unit.ingest.test_map_matching import grid_city, heading_of, point_on

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@dataclass
class Signer:
    """A device signing its chained messages; positions and times are the caller's."""

    device_id: str
    seq: int = 0
    prev: str = ""

    def __post_init__(self) -> None:
        self.key = Ed25519PrivateKey.from_bytes(hashlib.sha256(self.device_id.encode()).digest())

    def vehicle(
        self, ts: int, lat: int = 525_200_000, lon: int = 134_050_000, hdg: int = 9000, **kw: Any
    ) -> bytes:
        fields = {"odo_m": 1000 + 14 * (self.seq + 1), "spd_cms": 1389, "hdg_cdeg": hdg} | kw
        return self._sign(Telemetry(dev=self.device_id, seq=self.seq + 1, prev=self.prev, ts=ts,
                                    lat_e7=lat, lon_e7=lon, **fields))  # fmt: skip

    def rsu(self, ts: int, lat: int, lon: int, obs: tuple[Observation, ...]) -> bytes:
        return self._sign(Telemetry(dev=self.device_id, seq=self.seq + 1, prev=self.prev, ts=ts,
                                    lat_e7=lat, lon_e7=lon, obs=obs))  # fmt: skip

    def _sign(self, telemetry: Telemetry) -> bytes:
        raw = sign_telemetry(self.key, telemetry)
        self.seq, self.prev = telemetry.seq, chain_hash(raw)
        return raw

    def key_entry(self, valid_from_ms: int = T0) -> bytes:
        """This device's key record as a ledger entry (it travels on telemetry.verified too)."""
        return device_key_entry(
            DeviceKey(
                device_id=self.device_id,
                public_key=self.key.public_key,
                owner_org="fleet-a",
                kind=DeviceKind.VEHICLE,
                valid_from_ms=valid_from_ms,
            )
        )


def verified_record(
    value: bytes,
    offset: int,
    *,
    partition: int = 0,
    recv_ms: int | None = None,
    timestamp_ms: int = 0,
    topic: str = "telemetry.verified",
) -> StreamRecord:
    """A record as the verifier forwards it (``recv_ms`` header unless None)."""
    headers = () if recv_ms is None else ((HEADER_RECV_MS, str(recv_ms).encode()),)
    return StreamRecord(topic, partition, offset, None, value, headers, timestamp_ms)


def jws_with_payload(payload: bytes) -> bytes:
    """A compact JWS around arbitrary payload bytes (the signature is not looked at here)."""
    header = _b64(b'{"alg":"Ed25519","kid":"veh-1"}')
    return header + b"." + _b64(payload) + b"." + _b64(b"\x00" * 64)


def test_vehicle_rows_carry_every_field_and_the_leaf_hash() -> None:
    car = Signer("veh-1")
    raws = [car.vehicle(T0 + i * 1000, lat=525_200_000 + i, hdg=100 * i) for i in range(5)]
    batch = decode_records([verified_record(r, i, recv_ms=T0 + 5) for i, r in enumerate(raws)])
    assert (batch.undecodable, batch.device_key_entries, batch.observations) == (0, 0, [])
    assert batch.unmatched == 5  # no road network given
    for raw, row in zip(raws, batch.telemetry, strict=True):
        t = TelemetryMessage.from_bytes(raw).telemetry
        assert row == (t.dev, t.seq, t.ts, T0 + 5, t.odo_m, t.lat_e7, t.lon_e7, t.spd_cms,
                       t.hdg_cdeg, None, leaf_hash(raw))  # fmt: skip


_ints = {name: st.integers(*bounds) for name, bounds in RANGES.items()}


@given(
    seq=_ints["seq"], ts=_ints["ts"], odo=_ints["odo_m"], lat=_ints["lat_e7"],
    lon=_ints["lon_e7"], spd=_ints["spd_cms"], hdg=_ints["hdg_cdeg"],
    dev=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
)  # fmt: skip
def test_the_lean_decoder_agrees_with_the_full_parser(
    seq: int, ts: int, odo: int, lat: int, lon: int, spd: int, hdg: int, dev: str
) -> None:
    key = Ed25519PrivateKey.from_bytes(bytes(32))
    prev = "" if seq == 1 else chain_hash(b"previous")
    telemetry = Telemetry(dev=dev, seq=seq, prev=prev, ts=ts, odo_m=odo, lat_e7=lat,
                          lon_e7=lon, spd_cms=spd, hdg_cdeg=hdg)  # fmt: skip
    raw = sign_telemetry(key, telemetry)
    [row] = decode_records([verified_record(raw, 0, timestamp_ms=7)]).telemetry
    t = TelemetryMessage.from_bytes(raw).telemetry
    assert row == (t.dev, t.seq, t.ts, 7, t.odo_m, t.lat_e7, t.lon_e7, t.spd_cms, t.hdg_cdeg,
                   None, leaf_hash(raw))  # fmt: skip


def test_an_rsu_message_is_one_telemetry_row_and_one_row_per_observation() -> None:
    segments = grid_city(3)
    street = segments[0]
    on_street = point_on(street, 0.5, 3.0)
    far_away = (street.a_lat_e7 + 50_000, street.a_lon_e7)  # about 550 m north of the grid
    rsu = Signer("rsu-1")
    obs = (
        Observation("veh-1", T0 - 400, *on_street),
        Observation("veh-2", T0 - 300, *far_away),
    )
    raw = rsu.rsu(T0, *on_street, obs)
    batch = decode_records([verified_record(raw, 3, recv_ms=T0 + 9)], SegmentIndex(segments))
    digest = leaf_hash(raw)
    assert batch.telemetry == [
        ("rsu-1", 1, T0, T0 + 9, None, *on_street, None, None, street.segment_id, digest)
    ]
    assert batch.observations == [
        ("rsu-1", 1, 0, T0, "veh-1", T0 - 400, *on_street, street.segment_id, digest),
        ("rsu-1", 1, 1, T0, "veh-2", T0 - 300, *far_away, None, digest),
    ]
    assert batch.unmatched == 1  # veh-2's sighting


def test_vehicle_positions_are_map_matched_with_their_heading() -> None:
    segments = grid_city(4)
    car = Signer("veh-1")
    records = []
    for i, street in enumerate(segments[:12]):
        lat, lon = point_on(street, 0.3, 2.0)
        records.append(verified_record(car.vehicle(T0 + i, lat, lon, heading_of(street)), i))
    batch = decode_records(records, SegmentIndex(segments))
    assert [row[9] for row in batch.telemetry] == [s.segment_id for s in segments[:12]]
    assert batch.unmatched == 0


def test_device_key_entries_are_counted_and_skipped() -> None:
    car = Signer("veh-1")
    records = [
        verified_record(car.key_entry(), 0),
        verified_record(car.vehicle(T0), 1),
        verified_record(Signer("veh-2").key_entry(), 2),
    ]
    batch = decode_records(records)
    assert batch.device_key_entries == 2
    assert [row[0] for row in batch.telemetry] == ["veh-1"]
    assert batch.undecodable == 0


_GOOD = {"v": 1, "dev": "veh-1", "seq": 2, "prev": chain_hash(b"x"), "ts": T0, "odo_m": 5,
         "lat_e7": 1, "lon_e7": 2, "spd_cms": 3, "hdg_cdeg": 4}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"garbage", "not a compact JWS"),
        (b".e30.AA", "not a compact JWS"),
        (b"eyJ9.!!!.AA", "payload"),
        (jws_with_payload(b"[1, 2]"), "not a JSON object"),
        (jws_with_payload(b"{"), "payload"),
        (jws_with_payload("{\"dev\": \"v\u00e9h\"}".encode()), "payload"),
        (jws_with_payload(json.dumps(_GOOD | {"seq": True}).encode()), "seq"),
        (jws_with_payload(json.dumps(_GOOD | {"seq": 0}).encode()), "seq"),
        (jws_with_payload(json.dumps(_GOOD | {"lat_e7": 900_000_001}).encode()), "lat_e7"),
        (jws_with_payload(json.dumps(_GOOD | {"spd_cms": 1.5}).encode()), "spd_cms"),
        (jws_with_payload(json.dumps(_GOOD | {"odo_m": 2**63}).encode()), "odo_m"),
        (jws_with_payload(json.dumps(_GOOD | {"dev": "veh\u00001"}).encode()), "dev"),
        (jws_with_payload(json.dumps(_GOOD | {"dev": "x" * 65}).encode()), "dev"),
        (jws_with_payload(json.dumps({k: v for k, v in _GOOD.items() if k != "ts"}).encode()),
         "missing 'ts'"),
        (jws_with_payload(json.dumps(_GOOD | {"obs": {"veh": "a"}}).encode()), "obs"),
        (jws_with_payload(json.dumps(_GOOD | {"obs": [{"veh": "a", "ts": T0, "lat_e7": 1}]})
                          .encode()), "missing 'lon_e7'"),
    ],
)  # fmt: skip
def test_undecodable_records_are_counted_named_and_skipped(value: bytes, reason: str) -> None:
    good = Signer("veh-9").vehicle(T0)
    batch = decode_records(
        [verified_record(good, 40), verified_record(value, 41, partition=2)], None
    )
    assert batch.undecodable == 1
    assert [row[0] for row in batch.telemetry] == ["veh-9"]
    [problem] = batch.problems
    assert problem.startswith("telemetry.verified/2@41: ")
    assert reason in problem


def test_receive_time_is_the_header_else_the_record_timestamp_else_now() -> None:
    car = Signer("veh-1")
    records = [
        verified_record(car.vehicle(T0), 0, recv_ms=T0 + 1, timestamp_ms=T0 + 2),
        verified_record(car.vehicle(T0), 1, timestamp_ms=T0 + 2),
        verified_record(car.vehicle(T0), 2),
    ]
    batch = decode_records(records, now_ms=T0 + 3)
    assert [row[3] for row in batch.telemetry] == [T0 + 1, T0 + 2, T0 + 3]


def test_days_are_utc_days_of_the_device_time() -> None:
    car, rsu = Signer("veh-1"), Signer("rsu-1")
    records = [
        verified_record(car.vehicle(T0 - 1), 0),
        verified_record(car.vehicle(T0 + 5 * MS_PER_DAY), 1),
        verified_record(rsu.rsu(T0 + 9 * MS_PER_DAY, 0, 0, (Observation("veh-1", T0, 0, 0),)), 2),
    ]
    first = T0 // MS_PER_DAY
    assert decode_records(records).days() == {first - 1, first + 5, first + 9}


def test_write_counts_add_up() -> None:
    a = WriteCounts(records=3, telemetry=3, telemetry_inserted=1, observations=4,
                    observations_inserted=4, device_key_entries=1)  # fmt: skip
    b = WriteCounts(records=2, telemetry=1, telemetry_inserted=1, undecodable=1, unmatched=2)
    total = a + b
    assert total == WriteCounts(5, 4, 2, 4, 4, 1, 1, 2)
    assert total.duplicates == 2


def test_an_unknown_storage_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown telemetry storage mode"):
        BatchWriter("sharded")
