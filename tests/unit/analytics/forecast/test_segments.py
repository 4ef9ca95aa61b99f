"""Segment forecasts from 5-minute aggregates: the model where history allows, else fallbacks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from analytics.forecast.grid import GridError
from analytics.forecast.refresh import issue_time
from analytics.forecast.segments import (
    STEP,
    AggregateRow,
    forecast_segments,
    series_grids,
)

ISSUED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
START = ISSUED - timedelta(days=3)


def daily_speed_cms(bucket: datetime) -> float:
    minutes = bucket.hour * 60 + bucket.minute
    return 1000.0 + 300.0 * math.sin(2 * math.pi * minutes / 1440) + 7.0 * ((minutes // 5) % 3)


def history() -> list[AggregateRow]:
    rows = []
    bucket = START
    while bucket < ISSUED:
        rows.append(AggregateRow(bucket, 1, daily_speed_cms(bucket), 2 + (bucket.hour // 8)))
        if bucket >= ISSUED - timedelta(minutes=30):
            rows.append(AggregateRow(bucket, 2, 800.0, 1))
        if START + timedelta(days=1) <= bucket < START + timedelta(days=1, hours=2):
            rows.append(AggregateRow(bucket, 3, 500.0, 1))
        bucket += STEP
    return rows


def test_grids_convert_units_and_fill_flow_gaps_with_zero() -> None:
    rows = [AggregateRow(START, 7, 1000.0, 3), AggregateRow(START + 2 * STEP, 7, None, 2)]
    speed, flow = series_grids(rows, START, START + 4 * STEP, {7: [8]})
    assert speed.ids == ("7",)
    assert speed.values[:, 0].tolist()[:1] == [pytest.approx(36.0)]
    assert math.isnan(speed.values[1, 0])
    assert math.isnan(speed.values[2, 0])
    assert flow.values[:, 0].tolist() == [3, 0, 2, 0]
    assert speed.neighbours == ((),)  # segment 8 has no data: not a column
    assert (speed.first_slot, speed.first_weekday) == (144, 1)  # Tuesday 12:00


def test_each_segment_gets_the_method_its_history_allows() -> None:
    forecasts = forecast_segments(history(), start=START, issued_at=ISSUED, neighbours={1: [2]})
    by_key = {(f.segment_id, f.horizon_min): f for f in forecasts}
    assert len(forecasts) == 9
    assert {f.speed_method for f in forecasts if f.segment_id == 1} == {"lag-ridge"}
    assert {f.speed_method for f in forecasts if f.segment_id == 2} == {"window-mean"}
    assert {f.speed_method for f in forecasts if f.segment_id == 3} == {"profile"}
    assert {f.flow_method for f in forecasts} == {"lag-ridge"}  # flow has no gaps
    # 15 minutes ahead: the bucket starting 10 minutes after the issue time.
    assert by_key[(1, 15)].target_at == ISSUED + timedelta(minutes=10)
    assert by_key[(1, 60)].target_at == ISSUED + timedelta(minutes=55)
    for h in (15, 30, 60):
        target = by_key[(1, h)].target_at
        expected = daily_speed_cms(target) * 0.036
        speed = by_key[(1, h)].speed_kmh
        assert speed is not None
        assert speed == pytest.approx(expected, abs=2.0)
        assert by_key[(2, h)].speed_kmh == pytest.approx(28.8)
        assert by_key[(3, h)].speed_kmh == pytest.approx(18.0)
        assert 0.0 <= by_key[(1, h)].flow_vehicles <= 6.0


def test_a_history_too_short_for_the_model_falls_back_everywhere() -> None:
    start = ISSUED - timedelta(hours=2)
    rows = [r for r in history() if r.bucket >= start]
    forecasts = forecast_segments(rows, start=start, issued_at=ISSUED)
    assert {f.speed_method for f in forecasts if f.segment_id in (1, 2)} == {"window-mean"}
    assert {f.flow_method for f in forecasts} == {"window-mean"}
    assert forecast_segments([], start=start, issued_at=ISSUED) == []
    # Less than one window of history: the older steps count as missing.
    short = ISSUED - timedelta(minutes=20)
    tiny = forecast_segments([r for r in rows if r.bucket >= short], start=short, issued_at=ISSUED)
    assert [f.speed_kmh for f in tiny if f.segment_id == 2] == [pytest.approx(28.8)] * 3


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(GridError, match="horizons_min"):
        forecast_segments(history(), start=START, issued_at=ISSUED, horizons_min=(7,))
    with pytest.raises(GridError, match="start"):
        forecast_segments([], start=START + timedelta(minutes=1), issued_at=ISSUED)


def test_issue_time_is_the_start_of_the_current_bucket() -> None:
    assert issue_time(datetime(2026, 11, 20, 12, 4, 59, tzinfo=UTC)) == ISSUED
    assert issue_time(ISSUED) == ISSUED
    assert issue_time(datetime(2026, 11, 20, 12, 5, tzinfo=UTC)) == ISSUED + STEP
    with pytest.raises(ValueError, match="now"):
        issue_time(datetime(2026, 11, 20, 12, 5))
