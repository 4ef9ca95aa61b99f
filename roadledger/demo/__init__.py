"""``roadledger demo``: the whole pipeline on one machine, embedded services by default.

:func:`~roadledger.demo.run.run_demo` picks a service per role (a real one when its
``ROADLEDGER_*`` URL is set in the environment, else the embedded one), starts the pipeline
(:mod:`~roadledger.demo.pipeline`), publishes a simulated fleet with injected fraud over MQTT,
shows progress (:mod:`~roadledger.demo.display`) and compares what the pipeline did with the
simulator's ground truth (:mod:`~roadledger.demo.outcome`).
"""

from roadledger.demo.outcome import DemoResult, compare_outcomes
from roadledger.demo.run import DemoConfig, ServiceChoice, choose_services, run_demo

__all__ = [
    "DemoConfig",
    "DemoResult",
    "ServiceChoice",
    "choose_services",
    "compare_outcomes",
    "run_demo",
]
