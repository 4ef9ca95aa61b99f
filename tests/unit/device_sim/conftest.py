"""Shared runs of the simulator: generated once per session, inspected by many tests."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from chain.telemetry import DeviceKind
from device_sim.network import NetworkSpec
from device_sim.scenarios import ScenarioSpec, ScenarioType, parse_scenario_flag
from device_sim.simulation import Outgoing, Simulation, SimulationConfig
from device_sim.truth import TruthFile, TruthWriter, read_truth

START_MS = 1_767_254_400_000  # 2026-01-01 08:00 UTC: 09:00 in Berlin, rush hour
SMALL_CITY = NetworkSpec(streets=6)


@dataclass(frozen=True)
class Run:
    """A generated run: the simulation, what it published, and the parsed truth file."""

    simulation: Simulation
    messages: list[Outgoing]
    truth: TruthFile
    truth_text: str


def generate(config: SimulationConfig, directory: Path) -> Run:
    simulation = Simulation(config)
    buffer = io.StringIO()
    writer = TruthWriter(buffer)
    messages = list(simulation.messages(writer))
    writer.summary(None, None)
    path = directory / "truth.jsonl"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return Run(simulation, messages, read_truth(path), buffer.getvalue())


PLAIN = SimulationConfig(
    vehicles=60, rsus=6, rate=660.0, duration_s=20.0, seed=11, start_ms=START_MS, network=SMALL_CITY
)


def plain_config(**changes: Any) -> SimulationConfig:
    """60 vehicles and 6 RSUs in a small city, every 100 ms, 20 s: 13,200 messages."""
    return replace(PLAIN, **changes)


def scenario_config() -> SimulationConfig:
    """Every scenario on its own vehicle, and the message-level ones on RSUs too."""
    on_rsus = [
        ScenarioSpec(type=kind, kind=DeviceKind.RSU)
        for kind in (
            ScenarioType.FORGED_SIGNATURE,
            ScenarioType.TAMPERED_PAYLOAD,
            ScenarioType.DUPLICATE_DELIVERY,
            ScenarioType.REPLAY,
        )
    ]
    return SimulationConfig(
        vehicles=30,
        rsus=5,
        rate=350.0,
        duration_s=30.0,
        seed=5,
        start_ms=START_MS,
        network=SMALL_CITY,
        scenarios=(*parse_scenario_flag("all"), *on_rsus),
    )


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return generate(plain_config(), tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="session")
def scenario_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return generate(scenario_config(), tmp_path_factory.mktemp("scenarios"))
