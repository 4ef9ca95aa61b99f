"""The fast device encoder writes exactly what chain.telemetry.sign_telemetry writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chain.encoding import b64url_decode
from chain.telemetry import (
    RANGES,
    Observation,
    Telemetry,
    chain_hash,
    check_chain_link,
    sign_telemetry,
    verify,
)
from device_sim.fleet import device_private_key
from device_sim.observing import Sighting
from device_sim.signing import ChainedSigner

KEY = device_private_key(1, "veh-000042")
ids = st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)


def bounded(name: str) -> st.SearchStrategy[int]:
    low, high = RANGES[name]
    return st.integers(low, high)


@given(
    dev=ids,
    ts=bounded("ts"),
    odo=bounded("odo_m"),
    lat=bounded("lat_e7"),
    lon=bounded("lon_e7"),
    spd=bounded("spd_cms"),
    hdg=bounded("hdg_cdeg"),
)
def test_vehicle_messages_are_byte_identical(
    dev: str, ts: int, odo: int, lat: int, lon: int, spd: int, hdg: int
) -> None:
    signer = ChainedSigner(dev, KEY)
    first = signer.next_vehicle(ts, odo, lat, lon, spd, hdg)
    assert first == sign_telemetry(
        KEY,
        Telemetry(
            dev=dev,
            seq=1,
            prev="",
            ts=ts,
            odo_m=odo,
            lat_e7=lat,
            lon_e7=lon,
            spd_cms=spd,
            hdg_cdeg=hdg,
        ),
    )
    second = signer.next_vehicle(ts, odo, lat, lon, spd, hdg)
    assert second == sign_telemetry(
        KEY,
        Telemetry(
            dev=dev,
            seq=2,
            prev=chain_hash(first),
            ts=ts,
            odo_m=odo,
            lat_e7=lat,
            lon_e7=lon,
            spd_cms=spd,
            hdg_cdeg=hdg,
        ),
    )


sightings = st.lists(
    st.builds(Sighting, ids, bounded("ts"), bounded("lat_e7"), bounded("lon_e7")), max_size=64
)


@given(dev=ids, ts=bounded("ts"), lat=bounded("lat_e7"), lon=bounded("lon_e7"), obs=sightings)
def test_rsu_messages_are_byte_identical(
    dev: str, ts: int, lat: int, lon: int, obs: list[Sighting]
) -> None:
    raw = ChainedSigner(dev, KEY).next_rsu(ts, lat, lon, obs)
    observations = tuple(Observation(o.veh, o.ts, o.lat_e7, o.lon_e7) for o in obs)
    assert raw == sign_telemetry(
        KEY, Telemetry(dev=dev, seq=1, prev="", ts=ts, lat_e7=lat, lon_e7=lon, obs=observations)
    )


def test_messages_chain_and_verify() -> None:
    signer = ChainedSigner("veh-000042", KEY)
    previous = None
    for k in range(5):
        message = verify(
            signer.next_vehicle(1_767_225_600_000 + k, 10 + k, 1, 2, 3, 4), KEY.public_key
        )
        assert message.telemetry.seq == k + 1
        assert signer.last_digest == message.message_hash
        assert signer.prev == chain_hash(message.raw)
        check_chain_link(previous, message)
        previous = message


def test_sign_payload_does_not_touch_the_chain() -> None:
    signer = ChainedSigner("veh-000042", KEY)
    signer.next_vehicle(1_767_225_600_000, 1, 2, 3, 4, 5)
    seq, prev = signer.seq, signer.prev
    raw = signer.sign_payload(b'{"anything":1}')
    assert (signer.seq, signer.prev) == (seq, prev)
    assert raw.startswith(b"eyJhbGciOiJFZDI1NTE5Iiwia2lkIjoidmVoLTAwMDA0MiJ9.eyJhbnl0aGluZyI6MX0.")
    assert KEY.public_key.is_valid_signature(
        b64url_decode(raw.split(b".")[2]), raw.rsplit(b".", 1)[0]
    )
