"""Orchestration of ``roadledger demo``: services, schema, fleet, pipeline, simulation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.demo.display import ProgressView, print_summary
from app.demo.outcome import DemoResult, compare_outcomes, observed_outcomes
from contracts.errors import CommandError

if TYPE_CHECKING:
    from rich.console import Console

    from app.demo.pipeline import Pipeline
    from app.scoring import ScoreReport
    from device_sim.emitter import Outgoing
    from device_sim.publisher import MqttPublisher, PublishProgress, PublishReport
    from device_sim.simulation import Simulation
    from roadledger.settings import Settings

__all__ = ["DemoConfig", "ServiceChoice", "choose_services", "run_demo"]

_ENV = {
    "postgres": "ROADLEDGER_DATABASE_URL",
    "mqtt": "ROADLEDGER_MQTT_URL",
    "kafka": "ROADLEDGER_KAFKA_BOOTSTRAP",
}


@dataclass(frozen=True, slots=True)
class ServiceChoice:
    """Which roles use a real service (its URL is set in the environment)."""

    real_postgres: bool
    real_mqtt: bool
    real_kafka: bool


def choose_services(environ: Mapping[str, str] | None = None) -> ServiceChoice:
    env = os.environ if environ is None else environ
    return ServiceChoice(*(bool(env.get(name)) for name in _ENV.values()))


@dataclass(frozen=True, slots=True)
class DemoConfig:
    vehicles: int = 100
    rsus: int = 10
    rate: float = 200.0
    duration_s: float = 60.0
    seed: int = 1
    scenarios: tuple[str, ...] = ("all",)
    dashboard: bool = True
    drain_timeout_s: float = 60.0
    truth_path: Path | None = None
    api: bool = True
    services: ServiceChoice = field(default_factory=lambda: choose_services())


_STARTUP: dict[str, float] = {}  # phase -> seconds since the demo began, for the summary


class _Stoppable:
    """Hands the publisher the run's messages until stopped (Ctrl-C); notes the first one."""

    def __init__(self, publisher: MqttPublisher, stop: threading.Event) -> None:
        self.publisher = publisher
        self.stop = stop
        self.first_at: float | None = None

    def _until_stopped(self, messages: Iterable[Outgoing]) -> Iterator[Outgoing]:
        remaining = iter(messages)
        while not self.stop.is_set():  # checked before the next message is generated
            message = next(remaining, None)
            if message is None:
                return
            if self.first_at is None:
                self.first_at = time.monotonic()
            yield message

    def publish(self, messages: Iterable[Outgoing], total: int | None = None) -> PublishReport:
        return self.publisher.publish(self._until_stopped(messages), total=total)


def run_demo(config: DemoConfig, settings: Settings, console: Console) -> DemoResult:
    """Run the demo to the end (or Ctrl-C) and print the summary."""
    began = time.monotonic()
    _STARTUP.clear()
    result = asyncio.run(_main(config, settings, console, began))
    print_summary(console, result)
    return result


def _simulation(config: DemoConfig, settings: Settings) -> Simulation:
    from device_sim.errors import ConfigError, ScenarioError
    from device_sim.scenarios import parse_scenario_flag
    from device_sim.simulation import Simulation, SimulationConfig

    start_ms = time.time_ns() // 1_000_000
    try:
        specs = [spec for flag in config.scenarios for spec in parse_scenario_flag(flag)]
        simulation = Simulation(
            SimulationConfig(
                vehicles=config.vehicles,
                rsus=config.rsus,
                rate=config.rate,
                duration_s=config.duration_s,
                seed=config.seed,
                start_ms=start_ms,
                scenarios=tuple(specs),
                id_prefix=f"demo{start_ms}-",  # every run its own devices: no (device, seq) reuse
            )
        )
    except (ConfigError, ScenarioError) as exc:
        raise CommandError(str(exc), exit_code=2) from None
    problems = simulation.timing_problems(
        start_ms, settings.clock_skew_ms, settings.max_message_age_ms, paced=True
    )
    if problems:
        raise CommandError("; ".join(problems), exit_code=2)
    return simulation


async def _main(
    config: DemoConfig, settings: Settings, console: Console, began: float
) -> DemoResult:
    from runtime.embedded import EmbeddedServices

    choice = config.services
    simulation = _simulation(config, settings)
    services = {
        "postgres": "real" if choice.real_postgres else "embedded",
        "mqtt": "real" if choice.real_mqtt else "embedded (amqtt, in process)",
        "stream": f"Kafka {settings.kafka_bootstrap}" if choice.real_kafka else "in memory",
    }
    embedded = EmbeddedServices(
        settings, postgres=not choice.real_postgres, mqtt=not choice.real_mqtt
    )
    with console.status("starting services"):
        running = await embedded.start()
    _STARTUP["services"] = time.monotonic() - began
    if embedded.postgres is not None:
        created = " (created now)" if embedded.postgres.initialised else ""
        services["postgres data"] = (
            f"{embedded.postgres.home}{created}; the server stops with the demo, the data "
            "stays and the next demo reuses it (delete the directory to start empty)"
        )
    try:
        services["mqtt"] += f" {running.mqtt_url}"
        return await _with_services(config, running, simulation, console, began, services)
    finally:
        await embedded.stop()


async def _with_services(
    config: DemoConfig,
    settings: Settings,
    simulation: Simulation,
    console: Console,
    began: float,
    services: dict[str, str],
) -> DemoResult:
    from app.demo.api_server import serve_demo_api
    from app.demo.pipeline import Pipeline
    from device_sim.registration import register_simulation
    from roadledger.db.pool import open_database
    from roadledger.db.schema import apply_schema
    from roadledger.stream.opening import open_stream, require_broker

    pool = await open_database(settings, max_size=8)
    try:
        with console.status("applying the schema, registering the fleet"):
            async with pool.acquire() as conn:
                await apply_schema(conn, retention_days=settings.retention_days)
            await register_simulation(pool, simulation.registration(), simulation.end_ms)
        _STARTUP["schema+fleet"] = time.monotonic() - began
        if config.services.real_kafka:
            from runtime.services.kafka import ensure_topics

            await require_broker(settings)  # down: one line, not aiokafka's traceback
            with console.status(f"creating the topics on Kafka {settings.kafka_bootstrap}"):
                await ensure_topics(settings)  # idempotent, as `roadledger services up` does
        stream = open_stream(settings, in_memory=not config.services.real_kafka)
        pipeline = Pipeline(settings, stream, pool)
        try:
            with console.status("starting the pipeline"):
                await pipeline.start()
            _STARTUP["pipeline"] = time.monotonic() - began
            if not config.api:
                return await _publish(
                    config, settings, simulation, pipeline, console, began, services
                )
            async with serve_demo_api(settings, pool) as api:
                for line in api.lines():
                    console.print(line)
                services["api"] = f"{api.url} (logins above; served while the demo runs)"
                return await _publish(
                    config, settings, simulation, pipeline, console, began, services
                )
        finally:
            await pipeline.close()
    finally:
        await pool.close()


async def _publish(
    config: DemoConfig,
    settings: Settings,
    simulation: Simulation,
    pipeline: Pipeline,
    console: Console,
    began: float,
    services: dict[str, str],
) -> DemoResult:
    from rich.console import Group
    from rich.live import Live

    from device_sim.publisher import MqttPublisher
    from device_sim.runner import run_simulation
    from roadledger.mqtt_auth import sim_account

    truth_path = config.truth_path or (
        settings.data_dir / "demo" / f"truth-{config.seed}-{simulation.start_ms}.jsonl"
    )
    latest: list[PublishProgress] = []
    stop_publishing = threading.Event()
    interrupted = asyncio.Event()
    publisher = _Stoppable(
        MqttPublisher(
            settings.mqtt,
            account=sim_account(settings),
            rate=simulation.rate,
            realtime=True,
            max_inflight=1000,
            progress=latest.append,
            keep_acked_s=settings.mqtt_keep_acked_s,
        ),
        stop_publishing,
    )
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        interrupted.set()
        stop_publishing.set()
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second one: the default action
            loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal)
    view = ProgressView(simulation.expected_genuine_messages())
    view.phase = "publishing"
    publishing = asyncio.create_task(
        asyncio.to_thread(run_simulation, simulation, truth_path=truth_path, publisher=publisher)
    )

    def acked() -> tuple[int, int]:
        if publishing.done() and not publishing.cancelled() and publishing.exception() is None:
            report = publishing.result().report
            if report is not None:
                return report.published, report.acked
        return (latest[-1].published, latest[-1].acked) if latest else (0, 0)

    def frame() -> Group:
        published, done = acked()
        return view.render(published, done, pipeline.counts())

    drained = False
    last_line = 0.0
    live = Live(frame(), console=console, refresh_per_second=4, transient=False)
    with live if config.dashboard else contextlib.nullcontext():
        try:
            while not publishing.done():
                if pipeline.failed:
                    stop_publishing.set()
                    break
                await asyncio.sleep(0.25)
                if config.dashboard:
                    live.update(frame())
                elif time.monotonic() - last_line >= 5.0:
                    last_line = time.monotonic()
                    console.print(view.line(acked()[1], pipeline.counts()))
            run = await publishing
            view.phase = "draining"
            published = run.report.published if run.report else 0
            deadline = time.monotonic() + config.drain_timeout_s
            while not interrupted.is_set() and not pipeline.failed:
                drained = pipeline.drained(published)
                if drained or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
                if config.dashboard:
                    live.update(frame())
            view.phase = "done" if drained else "stopped"
            if config.dashboard:
                live.update(frame())
        finally:
            stop_publishing.set()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
    if pipeline.failed:
        await pipeline.close()  # raises the component's error
    await pipeline.close()
    warning_report = await _score_warnings(pipeline, truth_path, simulation.start_ms)
    counts = pipeline.counts()
    observed = observed_outcomes(counts)
    expected = run.expected
    first = publisher.first_at
    return DemoResult(
        published=run.report.published if run.report else 0,
        expected=expected,
        observed=observed,
        counts=counts,
        truth_path=truth_path,
        database_url=settings.redacted_database_url(),
        services=services,
        start_to_first_publish_s=None if first is None else first - began,
        drained=drained,
        interrupted=interrupted.is_set(),
        warnings=run.warnings,
        rows=compare_outcomes(expected, observed),
        startup=dict(_STARTUP),
        warning_report=warning_report,
    )


async def _score_warnings(pipeline: Pipeline, truth_path: Path, start_ms: int) -> ScoreReport:
    """This run's stored warnings against the truth file's events (app.scoring)."""
    from analytics.warnings.store import load_warnings
    from app.scoring import score_warnings
    from device_sim.truth import read_truth

    truth = await asyncio.to_thread(read_truth, truth_path)
    devices = {m.device for m in truth.messages}
    stored = await load_warnings(pipeline.pool, since_ms=start_ms)
    # This run's devices, and every segment's warnings since it started (congestion).
    mine = [w for w in stored if w.device_id is None or w.device_id in devices]
    return score_warnings(truth.warnings, mine, optional=truth.optional)
