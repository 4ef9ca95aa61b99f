"""A whole run without scenarios: deterministic, verifiable, chained, consistent with truth."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

from chain.telemetry import TelemetryMessage, check_chain_link
from contracts.roads import haversine_m
from contracts.topics import mqtt_telemetry_topic
from device_sim.driving import GNSS_MAX_ERROR_M
from device_sim.errors import ConfigError
from device_sim.observing import OBSERVATION_RADIUS_M
from device_sim.simulation import Simulation

from .conftest import START_MS, Run, generate, plain_config


def verified(run: Run) -> dict[str, list[TelemetryMessage]]:
    """Every message verified under its registered key record, grouped by device."""
    records = {r.device_id: r for r in run.simulation.registration().records}
    by_device: dict[str, list[TelemetryMessage]] = defaultdict(list)
    for outgoing in run.messages:
        device = outgoing.topic.rsplit("/", 1)[1]
        assert outgoing.topic == mqtt_telemetry_topic(device)
        by_device[device].append(records[device].verify_message(outgoing.payload))
    return by_device


def test_same_seed_and_start_give_byte_identical_runs(plain_run: Run, tmp_path: Path) -> None:
    again = generate(plain_config(), tmp_path)
    assert again.messages == plain_run.messages
    assert again.truth_text == plain_run.truth_text


def test_another_seed_or_start_gives_another_run(plain_run: Run, tmp_path: Path) -> None:
    other_seed = Simulation(plain_config(seed=12, duration_s=1.0))
    other_start = Simulation(plain_config(start_ms=START_MS + 1, duration_s=1.0))
    first = {m.payload for m in plain_run.messages[:66]}
    assert first.isdisjoint(m.payload for m in other_seed.messages())
    assert first.isdisjoint(m.payload for m in other_start.messages())


def test_every_message_verifies_under_its_registered_key_and_chains(plain_run: Run) -> None:
    by_device = verified(plain_run)
    simulation = plain_run.simulation
    assert sorted(by_device) == sorted(simulation.fleet.device_ids)
    per_device = simulation.duration_ms // simulation.interval_ms
    for messages in by_device.values():
        assert [m.telemetry.seq for m in messages] == list(range(1, per_device + 1))
        previous = None
        for message in messages:
            check_chain_link(previous, message)
            previous = message
        stamps = [m.telemetry.ts for m in messages]
        assert all(b - a == simulation.interval_ms for a, b in itertools.pairwise(stamps))
        assert simulation.start_ms <= stamps[0] < simulation.start_ms + simulation.interval_ms


def test_messages_come_out_in_time_order_at_the_configured_rate(plain_run: Run) -> None:
    times = [m.publish_at_ms for m in plain_run.messages]
    assert times == sorted(times)
    assert len(plain_run.messages) == 660 * 20
    assert plain_run.simulation.rate == 660
    per_second: dict[int, int] = defaultdict(int)
    for t in times:
        per_second[(t - START_MS) // 1000] += 1
    assert set(per_second.values()) == {660}


def test_vehicle_odometers_grow_with_the_distance_driven(plain_run: Run) -> None:
    initial = {v.device_id: v.initial_odo_m for v in plain_run.simulation.fleet.vehicles}
    for device, messages in verified(plain_run).items():
        if device not in initial:
            continue
        odometers = [m.telemetry.odo_m or 0 for m in messages]
        assert odometers[0] - initial[device] < 100 / 3.6 * 0.1 + 1  # one 100 ms step at most
        assert all(0 <= b - a <= 4 for a, b in itertools.pairwise(odometers))  # 130 km/h


def test_rsus_observe_only_vehicles_within_the_radius(plain_run: Run) -> None:
    by_device = verified(plain_run)
    reported = {
        (m.telemetry.dev, m.telemetry.ts): m.telemetry
        for messages in by_device.values()
        for m in messages
    }
    sightings = 0
    for rsu in plain_run.simulation.fleet.rsus:
        for message in by_device[rsu.device_id]:
            t = message.telemetry
            assert (t.lat_e7, t.lon_e7) == (rsu.lat_e7, rsu.lon_e7)
            assert t.obs is not None
            for seen in t.obs:
                assert seen.ts <= t.ts
                vehicle = reported[seen.veh, seen.ts]  # the sighting is of a real report
                own = haversine_m(rsu.lat_e7, rsu.lon_e7, vehicle.lat_e7, vehicle.lon_e7)
                assert own <= OBSERVATION_RADIUS_M + GNSS_MAX_ERROR_M + 3
                assert (
                    haversine_m(seen.lat_e7, seen.lon_e7, vehicle.lat_e7, vehicle.lon_e7)
                    < GNSS_MAX_ERROR_M + 4
                )
                sightings += 1
    assert sightings > 50


def test_truth_lines_describe_each_publish(plain_run: Run) -> None:
    truth = plain_run.truth
    assert truth.run["seed"] == 11
    assert truth.run["start_ms"] == START_MS
    assert truth.run["interval_ms"] == 100
    assert len(truth.messages) == len(plain_run.messages)
    for index, (line, outgoing) in enumerate(zip(truth.messages, plain_run.messages, strict=True)):
        assert line.i == index
        assert line.sha256 == hashlib.sha256(outgoing.payload).hexdigest()
        assert outgoing.topic.endswith("/" + line.device)
        assert line.publish_at_ms == outgoing.publish_at_ms == line.ts
        assert line.expected == "stored"
        assert line.scenario is None
    # No scenario: only what happens in ordinary traffic (trucks in the no-entry zone, ...).
    assert all(w.scenario == "natural" for w in truth.warnings)
    assert truth.summary is not None
    assert truth.summary["expected"] == {"stored": len(plain_run.messages)}


def test_registration_plan_holds_the_fleet_and_the_roads(plain_run: Run) -> None:
    simulation = plain_run.simulation
    plan = simulation.registration()
    assert [r.device_id for r in plan.records] == simulation.fleet.device_ids
    assert {r.valid_from_ms for r in plan.records} == {START_MS - 86_400_000}
    assert plan.revocations == ()
    assert list(plan.segments) == simulation.network.segments
    owners = {o.org_id for o in plan.organisations}
    assert {r.owner_org for r in plan.records} <= owners


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate": 100_000.0}, "minimum is 10 ms"),
        ({"vehicles": 0, "rsus": 0}, "at least one"),
        ({"duration_s": 0.0}, "duration"),
        ({"id_prefix": "bad prefix "}, "id prefix"),
        ({"start_ms": 5}, "between 2000 and 2100"),
    ],
)
def test_bad_configurations_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Simulation(plain_config(**changes))
