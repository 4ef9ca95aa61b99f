"""The simulator registers its fleet into the real registry; the keys it stored verify the run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from chain.errors import RejectReason, TelemetryError
from contracts.roads import load_segments
from device_sim.errors import RegistrationError
from device_sim.network import NetworkSpec
from device_sim.registration import register_simulation
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import Simulation, SimulationConfig
from device_sim.truth import TruthWriter, read_truth
from roadledger.registry import DeviceRegistry
from roadledger.rules_store import load_rulebook
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

START_MS = 1_767_254_400_000


def config(prefix: str, seed: int = 31) -> SimulationConfig:
    return SimulationConfig(
        vehicles=15, rsus=3, rate=180.0, duration_s=5.0, seed=seed, start_ms=START_MS,
        id_prefix=prefix, network=NetworkSpec(streets=6),
        scenarios=tuple(parse_scenario_flag("revoked_key:at=2")),
    )  # fmt: skip


async def test_registered_keys_verify_the_run_and_revocation_splits_it(
    postgres: Settings, tmp_path: Path
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    simulation = Simulation(config(prefix))
    with TruthWriter(tmp_path / "truth.jsonl") as truth:
        messages = list(simulation.messages(truth))
    lines = read_truth(tmp_path / "truth.jsonl").messages
    async with scratch_schema_pool(postgres) as pool:
        report = await register_simulation(pool, simulation.registration(), simulation.end_ms)
        assert (report.new_keys, report.revocations) == (18, 1)
        assert report.segments == len(simulation.network.links)
        assert report.rules_version == 1  # the authority's zones, signed and in the ledger
        book = await load_rulebook(pool)
        # The authority's rules apply inside its jurisdiction, which now covers the city.
        polygon = simulation.registration().rules.geofences[0].polygon
        in_force = book.in_force(simulation.start_ms)
        assert in_force.geofences(simulation.start_ms, "N3") == []  # not elsewhere
        for segment in simulation.network.segments:
            here = in_force.at(segment.a_lat_e7, segment.a_lon_e7)
            (zone,) = here.geofences(simulation.start_ms, "N3")
        assert zone.polygon == polygon
        assert zone.label == "city-traffic-authority/sim-zones@1"
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM ledger_outbox WHERE device_id = $1",
                "rules:city-traffic-authority",
            )
            == 1
        )
        stored = await DeviceRegistry(pool).keys_for(simulation.fleet.device_ids)
        assert sorted(stored) == sorted(simulation.fleet.device_ids)
        outcomes = set()
        for line, outgoing in zip(lines, messages, strict=True):
            (record,) = stored[line.device]
            if line.expected == "stored":
                assert record.verify_message(outgoing.payload).telemetry.seq == line.seq
            else:
                assert line.expected == "quarantine:revoked_key"
                with pytest.raises(TelemetryError) as caught:
                    record.verify_message(outgoing.payload)
                assert caught.value.reason is RejectReason.REVOKED_KEY
            outcomes.add(line.expected)
        assert outcomes == {"stored", "quarantine:revoked_key"}
        async with pool.acquire() as conn:
            assert list(await load_segments(conn)) == simulation.network.segments

        again = await register_simulation(pool, simulation.registration(), simulation.end_ms)
        assert (again.new_keys, again.already_registered) == (0, 18)
        assert again.rules_version is None  # the same zones: nothing published twice
        other = Simulation(config(prefix, seed=32))
        with pytest.raises(RegistrationError, match="registered with another key"):
            await register_simulation(pool, other.registration(), other.end_ms)
