"""``roadledger demo``: the whole pipeline on one machine, embedded services by default.

:func:`~app.demo.run.run_demo` picks a service per role (a real one when its
``ROADLEDGER_*`` URL is set in the environment, else the embedded one), starts the pipeline
(:mod:`~app.demo.pipeline`), publishes a simulated fleet with injected fraud over MQTT,
shows progress (:mod:`~app.demo.display`) and compares what the pipeline did with the
simulator's ground truth (:mod:`~app.demo.outcome`).
"""

from app.demo.outcome import DemoResult, compare_outcomes
from app.demo.run import DemoConfig, ServiceChoice, choose_services, run_demo

__all__ = [
    "DemoConfig",
    "DemoResult",
    "ServiceChoice",
    "choose_services",
    "compare_outcomes",
    "run_demo",
]
