"""Where the CPU goes: per-process CPU seconds of a benchmark run, from ``/proc`` (Linux).

A benchmark on a 2-core machine is bounded by the sum of every process's CPU per message, not
by any one stage, so the ingest benchmark prints this table next to the stage rates. Each
labelled process is counted with its descendants (the verifier's worker pool); services are
found by their command line, and count everything they do meanwhile, for whichever client:
run the benchmark on an otherwise idle machine. Counts are the last value seen while the
process was alive, so sample often (the benchmark samples several times a second).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuAccounting", "service_matchers"]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a live process, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may contain spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def service_matchers() -> dict[str, Callable[[str], bool]]:
    """The local services of ``scripts/services``, recognised by command line."""
    return {
        # the postmaster (.../bin/postgres -D ...) and its children ("postgres: walwriter")
        "postgres": lambda cmd: cmd.startswith("postgres: ") or _program(cmd) == "postgres",
        "kafka": lambda cmd: _program(cmd) == "java" and " kafka.Kafka " in cmd,
        "mosquitto": lambda cmd: _program(cmd) == "mosquitto",
    }


def _program(cmd: str) -> str:
    return cmd.split(" ", 1)[0].rpartition("/")[2]


@dataclass
class CpuAccounting:
    """CPU seconds per label since construction (or since :meth:`start` saw the process)."""

    roots: dict[str, int] = field(default_factory=dict)  # label -> pid (with descendants)
    matchers: dict[str, Callable[[str], bool]] = field(default_factory=dict)
    _label: dict[int, str] = field(default_factory=dict)
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _marks: dict[str, float] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return (_PROC / "self" / "stat").exists()

    def watch(self, label: str, pid: int) -> None:
        """Count ``pid`` and every process it starts under ``label`` from now on."""
        self.roots[label] = pid
        self.sample()

    def sample(self) -> None:
        """Read every watched process's CPU time now (call it often)."""
        if not self.available:
            return
        stats: dict[int, tuple[int, float]] = {}
        for entry in _PROC.iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None:
                    stats[int(entry.name)] = stat
        root_label = {pid: label for label, pid in self.roots.items()}
        for pid, (ppid, cpu) in stats.items():
            label = self._label.get(pid) or root_label.get(pid) or self._label.get(ppid)
            if label is None:
                cmd = _cmdline(pid)
                label = next((name for name, match in self.matchers.items() if match(cmd)), None)
                if label is None:
                    continue
                self._first[pid] = cpu  # a service already running: count from now
            self._label[pid] = label
            self._first.setdefault(pid, 0.0)
            self._last[pid] = cpu

    def seconds(self) -> dict[str, float]:
        """CPU seconds per label, most first."""
        totals: dict[str, float] = {}
        for pid, label in self._label.items():
            used = self._last.get(pid, 0.0) - self._first.get(pid, 0.0)
            totals[label] = totals.get(label, 0.0) + used
        for label, used in self._marks.items():
            totals[label] = totals.get(label, 0.0) - used
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def exclude_so_far(self, label: str) -> None:
        """Leave out what ``label`` used until now (e.g. a simulator's signing before it
        publishes)."""
        self.sample()
        self._marks[label] = self.seconds().get(label, 0.0) + self._marks.get(label, 0.0)
