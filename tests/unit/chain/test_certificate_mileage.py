"""The certificate summary: distances, gaps and anomalies, computed the same everywhere."""

from __future__ import annotations

import math

import pytest

from chain.mileage import (
    EARTH_RADIUS_M,
    HIGH_READING_SLACK_MM,
    LOW_READING_SLACK_MM,
    Anomaly,
    Gap,
    gnss_distance_mm,
    summarize,
)
from chain.telemetry import Observation, Telemetry, chain_hash

T0 = 1_767_225_600_000
LAT = 525_200_000  # Berlin
LON = 134_050_000
PREV = chain_hash(b"previous")


def msg(seq: int, odo_m: int, *, lon_e7: int = LON, lat_e7: int = LAT, ts: int = 0) -> Telemetry:
    return Telemetry(
        dev="veh-1",
        seq=seq,
        prev="" if seq == 1 else PREV,
        ts=ts or T0 + seq * 10_000,
        odo_m=odo_m,
        lat_e7=lat_e7,
        lon_e7=lon_e7,
        spd_cms=0,
        hdg_cdeg=0,
    )


def east(metres: float) -> int:
    """Degrees x 1e7 of longitude that make ``metres`` (great circle) at LAT."""
    per_e7 = EARTH_RADIUS_M * math.radians(1e-7) * math.cos(math.radians(LAT / 1e7))
    return round(metres / per_e7)


# --- distance ---------------------------------------------------------------------------------


def test_one_degree_of_latitude() -> None:
    expected = EARTH_RADIUS_M * math.pi / 180 * 1000
    assert gnss_distance_mm(0, 0, 10_000_000, 0) == round(expected) == 111_195_080


def test_known_distance_tv_tower_to_brandenburg_gate() -> None:
    # Fernsehturm (52.520817, 13.409419) to Brandenburger Tor (52.516275, 13.377704). By hand,
    # on a flat map: 0.004542 deg north = 505 m, 0.031715 deg east x cos(52.52) = 2146 m, so
    # sqrt(505**2 + 2146**2) = 2204 m.
    d = gnss_distance_mm(525_208_170, 134_094_190, 525_162_750, 133_777_040)
    assert 2_203_000 < d < 2_206_000
    assert d == gnss_distance_mm(525_162_750, 133_777_040, 525_208_170, 134_094_190)


def test_zero_and_antimeridian() -> None:
    assert gnss_distance_mm(LAT, LON, LAT, LON) == 0
    across = gnss_distance_mm(0, 1_799_999_990, 0, -1_799_999_990)
    assert across == gnss_distance_mm(0, 0, 0, 20)  # 2e-6 degrees, not 360
    assert gnss_distance_mm(900_000_000, 0, -900_000_000, 0) == round(
        EARTH_RADIUS_M * math.pi * 1000
    )


# --- summary ----------------------------------------------------------------------------------


def test_single_message() -> None:
    summary = summarize([msg(7, 1000)])
    assert (summary.first_seq, summary.last_seq, summary.message_count) == (7, 7, 1)
    assert (summary.odometer_start_m, summary.odometer_end_m, summary.distance_m) == (
        1000,
        1000,
        0,
    )
    assert (summary.gnss_distance_m, summary.gaps, summary.anomalies) == (0, (), ())


def test_honest_drive_with_a_gap() -> None:
    messages = [
        msg(1, 1000, lon_e7=LON),
        msg(2, 1100, lon_e7=LON + east(100)),
        msg(3, 1200, lon_e7=LON + east(200)),
        msg(6, 1500, lon_e7=LON + east(500)),
    ]
    summary = summarize(messages)
    assert summary.gaps == (Gap(3, 6),)
    assert summary.gaps[0].missing == 2
    assert summary.distance_m == 500
    assert summary.gnss_distance_m == 500
    assert summary.anomalies == ()


def test_gnss_distance_is_rounded_once_per_leg_in_millimetres() -> None:
    legs = [gnss_distance_mm(LAT, LON, LAT, LON + 7), gnss_distance_mm(LAT, LON + 7, LAT, LON + 14)]
    summary = summarize([msg(1, 0), msg(2, 0, lon_e7=LON + 7), msg(3, 0, lon_e7=LON + 14)])
    assert summary.gnss_distance_m == (sum(legs) + 500) // 1000


def test_odometer_rollback() -> None:
    summary = summarize([msg(1, 5000), msg(2, 5000), msg(3, 1000), msg(4, 1000)])
    assert summary.anomalies == (
        Anomaly(3, "odometer_rollback", "odometer 5000 m at seq 2, 1000 m at seq 3"),
    )
    assert summary.distance_m == -4000


def test_clock_rollback() -> None:
    summary = summarize([msg(1, 0, ts=T0 + 5000), msg(2, 0, ts=T0 + 4000)])
    assert summary.anomalies == (
        Anomaly(2, "clock_rollback", f"ts {T0 + 4000} at seq 2 is before ts {T0 + 5000} at seq 1"),
    )


def test_odometer_reads_low() -> None:
    # Positions 1 km apart, the odometer says 100 m: the car moved further than it admits.
    summary = summarize([msg(1, 0), msg(2, 100, lon_e7=LON + east(1000))])
    assert summary.anomalies == (
        Anomaly(
            2,
            "odometer_gnss_mismatch",
            "seq 1 -> 2: odometer +100 m, positions 1000 m apart: reads low",
        ),
    )


def test_reads_low_is_checked_across_gaps() -> None:
    summary = summarize([msg(1, 0), msg(5, 100, lon_e7=LON + east(1000))])
    assert [a.kind for a in summary.anomalies] == ["odometer_gnss_mismatch"]


def test_reads_low_tolerance() -> None:
    # 5% + 50 m: 1000 m odometer tolerates 1100 m of straight line, not 1102 m.
    ok = summarize([msg(1, 0), msg(2, 1000, lon_e7=LON + east(1099))])
    bad = summarize([msg(1, 0), msg(2, 1000, lon_e7=LON + east(1102))])
    assert ok.anomalies == ()
    assert len(bad.anomalies) == 1
    assert LOW_READING_SLACK_MM == 50_000


def test_odometer_reads_high_between_consecutive_seqs_only() -> None:
    # 3 km on the odometer for 1 km of straight line: more than 2x + 500 m.
    high = summarize([msg(1, 0), msg(2, 3000, lon_e7=LON + east(1000))])
    assert high.anomalies == (
        Anomaly(
            2,
            "odometer_gnss_mismatch",
            "seq 1 -> 2: odometer +3000 m, positions 1000 m apart: reads high",
        ),
    )
    across_gap = summarize([msg(1, 0), msg(3, 3000, lon_e7=LON + east(1000))])
    assert across_gap.anomalies == ()
    within = summarize([msg(1, 0), msg(2, 2499, lon_e7=LON + east(1000))])
    assert within.anomalies == ()
    assert HIGH_READING_SLACK_MM == 500_000


def test_parked_car_with_gnss_jitter_is_not_an_anomaly() -> None:
    jitter = [msg(s, 42, lon_e7=LON + (east(8) if s % 2 else 0)) for s in range(1, 10)]
    assert summarize(jitter).anomalies == ()


def test_several_anomalies_in_seq_order() -> None:
    messages = [
        msg(1, 1000, ts=T0 + 9000),
        msg(2, 900, ts=T0 + 8000),  # clock and odometer roll back at once
        msg(3, 900, ts=T0 + 10_000, lon_e7=LON + east(5000)),  # and then a jump
    ]
    assert [(a.seq, a.kind) for a in summarize(messages).anomalies] == [
        (2, "clock_rollback"),
        (2, "odometer_rollback"),
        (3, "odometer_gnss_mismatch"),
    ]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no messages"),
        ([msg(2, 0), msg(1, 0)], "not strictly increasing"),
        ([msg(1, 0), msg(1, 0)], "not strictly increasing"),
        (
            [
                Telemetry(
                    dev="r",
                    seq=1,
                    prev="",
                    ts=T0,
                    lat_e7=0,
                    lon_e7=0,
                    obs=(Observation("veh-1", T0, 0, 0),),
                )
            ],
            "RSU message has no odometer",
        ),
    ],
)
def test_summarize_preconditions(messages: list[Telemetry], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarize(messages)
