"""Simulated vehicles and roadside units that sign and publish telemetry (``roadledger sim``).

A city road network (:mod:`~device_sim.network`), a fleet with deterministic keys
(:mod:`~device_sim.fleet`), vehicles driving it (:mod:`~device_sim.driving`), RSUs sighting
them (:mod:`~device_sim.observing`), injected fraud and faults (:mod:`~device_sim.scenarios`),
the ground truth for scoring (:mod:`~device_sim.truth`), and an MQTT publisher
(:mod:`~device_sim.publisher`). Typical use::

    simulation = Simulation(SimulationConfig(vehicles=200, rsus=10, rate=210, duration_s=60,
                                             scenarios=tuple(parse_scenario_flag("all"))))
    await register_simulation(pool, simulation.registration(), simulation.end_ms)
    publisher = MqttPublisher(settings.mqtt, account=sim_account(settings),
                              rate=simulation.rate, realtime=True)
    result = run_simulation(simulation, truth_path=Path("truth.jsonl"), publisher=publisher)
"""

from device_sim.errors import (
    ConfigError,
    PublishError,
    RegistrationError,
    ScenarioError,
    SimulationError,
)
from device_sim.network import NetworkSpec, RoadNetwork, generate_network
from device_sim.publisher import MqttPublisher, PublishProgress, PublishReport
from device_sim.registration import register_simulation
from device_sim.runner import RunResult, run_simulation
from device_sim.scenarios import ScenarioSpec, ScenarioType, load_scenarios, parse_scenario_flag
from device_sim.simulation import Outgoing, Simulation, SimulationConfig
from device_sim.truth import MessageTruth, TruthFile, WarningTruth, read_truth

__all__ = [
    "ConfigError",
    "MessageTruth",
    "MqttPublisher",
    "NetworkSpec",
    "Outgoing",
    "PublishError",
    "PublishProgress",
    "PublishReport",
    "RegistrationError",
    "RoadNetwork",
    "RunResult",
    "ScenarioError",
    "ScenarioSpec",
    "ScenarioType",
    "Simulation",
    "SimulationConfig",
    "SimulationError",
    "TruthFile",
    "WarningTruth",
    "generate_network",
    "load_scenarios",
    "parse_scenario_flag",
    "read_truth",
    "register_simulation",
    "run_simulation",
]
