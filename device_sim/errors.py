"""Errors of the ``device_sim`` package: one root, one type per kind of failure.

Tree::

    SimulationError          root: catch this to catch everything device_sim raises
    ├── ConfigError          a simulation setting is out of range (fleet, rate, network, times)
    ├── ScenarioError        a scenario file or ``--scenario`` flag is invalid or cannot be
    │                        applied (unknown type, unknown device, not enough vehicles)
    ├── RegistrationError    the fleet could not be written to the device registry
    └── PublishError         the MQTT broker refused, dropped or never acknowledged messages

Standard-library parse errors (``json.JSONDecodeError``, ``ValueError``) and paho-mqtt's
errors are converted at the edge and never escape.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PublishError",
    "RegistrationError",
    "ScenarioError",
    "SimulationError",
]


class SimulationError(Exception):
    """Root of every error raised by ``device_sim``."""


class ConfigError(SimulationError):
    """A simulation setting is invalid; the message names the setting and the allowed range."""


class ScenarioError(SimulationError):
    """A scenario is invalid or cannot be applied to this fleet; the message names which."""


class RegistrationError(SimulationError):
    """Writing the fleet or the road network to PostgreSQL failed."""


class PublishError(SimulationError):
    """Publishing to the MQTT broker failed (connect, send, or missing acknowledgements)."""
