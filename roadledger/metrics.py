"""Metrics: what each process counts, carried in its health report, rendered for Prometheus.

A long-running process hands :func:`roadledger.health.start_reporting_health` a
:data:`MetricsSource`; every report then carries its samples, and ``GET /metrics`` on the API
(``api/routes/metrics.py``) renders every process's last report in the Prometheus text
exposition format (0.0.4), labelled with the process, beside the API's own counters. One scrape
target sees the whole deployment, behind the API's authentication, and no process opens a port
of its own.

Names follow Prometheus conventions: ``roadledger_<component>_<what>``, ``_total`` for
counters (which only grow while the process lives), anything else a gauge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["MetricsBoard", "MetricsSource", "Sample", "counters", "render"]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one metric, with its labels (sorted by name when rendered)."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not a Prometheus name")
        for label, _ in self.labels:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"label name {label!r} is not a Prometheus label name")

    def with_labels(self, **labels: str) -> Sample:
        """This sample with ``labels`` added (they win over labels of the same name)."""
        merged = dict(self.labels) | labels
        return Sample(self.name, self.value, tuple(sorted(merged.items())))


MetricsSource = Callable[[], Iterable[Sample]]


class MetricsBoard:
    """The sources of one process, registered as its parts come to life; itself a source
    (hand it to the health reporter before the parts exist)."""

    def __init__(self) -> None:
        self._sources: list[MetricsSource] = []

    def add(self, source: MetricsSource) -> None:
        """Include ``source``'s samples from now on."""
        self._sources.append(source)

    def __call__(self) -> list[Sample]:
        return [sample for source in self._sources for sample in source()]


def counters(prefix: str, values: Mapping[str, float], **labels: str) -> list[Sample]:
    """``<prefix>_<key>_total`` samples of a mapping of counters."""
    label_items = tuple(sorted(labels.items()))
    return [Sample(f"{prefix}_{key}_total", float(v), label_items) for key, v in values.items()]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def render(samples: Iterable[Sample]) -> str:
    """The Prometheus text format of ``samples``: grouped by name, one ``# TYPE`` line each."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines = []
    for name in sorted(by_name):
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE {name} {kind}")
        for sample in sorted(by_name[name], key=lambda s: s.labels):
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels))
            head = f"{name}{{{labels}}}" if labels else name
            lines.append(f"{head} {_number(sample.value)}")
    return "\n".join(lines) + "\n"
