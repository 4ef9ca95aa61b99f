"""Each long-running process's health, where a supervisor or an operator can read it.

A process (bridge, ingest, sequencer, analytics run, forecast run --every) writes
``<health dir>/<component>[.<instance>].json`` every ``every_s`` seconds from its own event
loop, atomically (a temporary file renamed over the old one): its pid, when it started and
when it last wrote, and each service it needs, up or down since when. ``roadledger health``
reads them and judges each process:

- ``ok``: every dependency up;
- ``degraded``: a dependency is down (the process is waiting it out, as it should);
- ``stale``: not written for ``stale_after_s``: the process died without a word (kill -9,
  OOM) or its event loop is stuck;
- ``stopped``: it ended cleanly (it says so on its way out).

Only ``ok`` is healthy. The files hold no secrets: names, counts and times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from roadledger.metrics import MetricsSource, Sample
from roadledger.resilience import Dependency, wait_or_stop
from roadledger.settings import Settings

__all__ = [
    "FORMAT",
    "ProcessHealth",
    "health_file",
    "read_health",
    "report_health",
    "start_reporting_health",
    "write_health",
]

FORMAT = "roadledger-health/v1"
log = logging.getLogger(__name__)
State = Literal["ok", "degraded", "stale", "stopped"]


def health_file(settings: Settings, component: str) -> Path:
    """Where ``component`` of this process reports (one file per process of a deployment)."""
    instance = settings.kafka_group_instance
    name = f"{component}.{instance}" if instance else component
    return settings.health_path / f"{name}.json"


def write_health(
    path: Path,
    component: str,
    dependencies: Sequence[Dependency],
    *,
    started: float,
    stopped: bool = False,
    samples: Sequence[Sample] = (),
    now: Callable[[], float] = time.time,
) -> None:
    """Write one report (atomically: a reader never sees half a file)."""
    report = {
        "format": FORMAT,
        "component": component,
        "pid": os.getpid(),
        "started": round(started, 3),
        "written": round(now(), 3),
        "stopped": stopped,
        "dependencies": [
            {
                "name": dependency.name,
                "up": dependency.healthy,
                "down_for_s": dependency.down_for_s,
                "outages": dependency.outages,
            }
            for dependency in dependencies
        ],
        "metrics": [[s.name, dict(s.labels), s.value] for s in samples],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)


async def report_health(
    settings: Settings,
    component: str,
    dependencies: Sequence[Dependency],
    stop: asyncio.Event,
    *,
    every_s: float | None = None,
    metrics: MetricsSource | None = None,
) -> None:
    """Write ``component``'s health every ``every_s`` (default ``settings.health_interval_s``)
    until ``stop`` is set, then once more as stopped. Run it as a task beside the work: when
    the process dies or its event loop is stuck, the report goes stale, which is the point.
    ``metrics``: the process's counters, carried in each report (:mod:`roadledger.metrics`)."""
    path = health_file(settings, component)
    started = time.time()
    interval = settings.health_interval_s if every_s is None else every_s
    failed = False
    while True:
        stopped = stop.is_set()
        try:
            samples = _samples_of(metrics, component)
            write_health(
                path, component, dependencies, started=started, stopped=stopped, samples=samples
            )
        except OSError as exc:  # health is worth a line, not the process
            if not failed:
                log.warning("cannot write health to %s: %s", path, exc)
            failed = True
        if stopped:
            return
        await wait_or_stop(stop, interval)


_broken_sources: set[str] = set()  # components whose metrics failed (logged once)


def _samples_of(metrics: MetricsSource | None, component: str) -> list[Sample]:
    """The samples of ``metrics``; a source that fails costs the report its samples (one
    log line), never the report: a health report that stops is a stale process."""
    if metrics is None:
        return []
    try:
        return list(metrics())
    except Exception as exc:
        if component not in _broken_sources:
            _broken_sources.add(component)
            log.error("%s: metrics left out of its health report: %r", component, exc)
        return []


_reporters: set[asyncio.Task[None]] = set()  # running, so none is garbage-collected


def start_reporting_health(
    settings: Settings,
    component: str,
    dependencies: Sequence[Dependency],
    stop: asyncio.Event,
    metrics: MetricsSource | None = None,
) -> asyncio.Task[None]:
    """:func:`report_health` as a task beside the caller's work, on the running loop."""
    task = asyncio.create_task(
        report_health(settings, component, dependencies, stop, metrics=metrics),
        name=f"{component} health",
    )
    _reporters.add(task)
    task.add_done_callback(_reporters.discard)
    return task


@dataclass(frozen=True)
class ProcessHealth:
    """One process's last report and the verdict on it, with the metrics it carried."""

    name: str
    pid: int | None
    state: State
    detail: str
    samples: tuple[Sample, ...] = ()
    dependencies: tuple[tuple[str, bool], ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def read_health(
    directory: Path, *, stale_after_s: float, now: Callable[[], float] = time.time
) -> list[ProcessHealth]:
    """Every process that reports in ``directory``, judged (see the module docstring). A file
    that cannot be read or is not a report is listed as ``stale`` with the reason."""
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        name = path.stem
        try:
            report = json.loads(path.read_text())
            if report.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} report")
            pid, written = int(report["pid"]), float(report["written"])
            dependencies = list(report["dependencies"])
            stopped = bool(report["stopped"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found.append(ProcessHealth(name, None, "stale", f"unreadable report: {exc}"))
            continue
        age = now() - written
        down = [d for d in dependencies if not d.get("up")]
        state: State
        if stopped:
            state, detail = "stopped", f"stopped {age:.0f} s ago"
        elif age > stale_after_s:
            state, detail = "stale", f"no report for {age:.0f} s"
        elif down:
            state = "degraded"
            detail = ", ".join(
                f"{d['name']} down for {d.get('down_for_s') or 0:.0f} s" for d in down
            )
        else:
            names = ", ".join(str(d["name"]) for d in dependencies) or "no dependencies"
            state, detail = "ok", f"{names} up"
        deps = tuple((str(d["name"]), bool(d.get("up"))) for d in dependencies)
        found.append(
            ProcessHealth(name, pid, state, detail, _samples(report.get("metrics", [])), deps)
        )
    return found


def _samples(raw: object) -> tuple[Sample, ...]:
    """The samples of a report; malformed entries are left out (a report is not trusted to be
    well-formed, only to be ours)."""
    found = []
    for item in raw if isinstance(raw, list) else []:
        try:
            name, labels, value = item
            found.append(Sample(str(name), float(value), tuple(sorted(dict(labels).items()))))
        except (TypeError, ValueError):
            continue
    return tuple(found)
