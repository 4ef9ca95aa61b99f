"""bench/cpu_accounting.py: per-process CPU with descendants, read from /proc."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

BURN = """
import subprocess, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
PIPE = subprocess.PIPE
child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=PIPE, stdout=PIPE)
child.stdout.readline()  # the grandchild burned its share
burn(0.3)
print("done", flush=True)
sys.stdin.readline()
child.stdin.close()
child.wait()
"""
CHILD = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


def _module() -> ModuleType:
    path = Path(__file__).parents[2] / "bench" / "cpu_accounting.py"
    spec = importlib.util.spec_from_file_location("cpu_accounting", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_accounting"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_counts_a_process_with_its_descendants_and_can_leave_out_a_phase() -> None:
    accounting = _module().CpuAccounting()
    code = f"CHILD = {CHILD!r}\n{BURN}"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        _measure(accounting, process)


def _measure(accounting: Any, process: subprocess.Popen[bytes]) -> None:
    try:
        accounting.watch("burner", process.pid)
        assert process.stdout is not None
        assert process.stdin is not None
        assert process.stdout.readline().strip() == b"done"
        accounting.sample()
        used = accounting.seconds()["burner"]
        assert 0.55 <= used < 5.0, "both processes' 0.3 s, plus interpreter start-up"
        accounting.exclude_so_far("burner")
        assert accounting.seconds()["burner"] == pytest.approx(0.0, abs=0.02)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)


def test_services_are_recognised_by_program_not_by_any_mention() -> None:
    matchers = _module().service_matchers()
    assert matchers["postgres"]("/usr/lib/postgresql/15/bin/postgres -D /data ")
    assert matchers["postgres"]("postgres: walwriter ")
    assert not matchers["postgres"]("/usr/bin/cc -I/usr/include/postgresql/15/server x.c ")
    assert matchers["mosquitto"]("/usr/sbin/mosquitto -c /x/mosquitto.conf ")
    assert not matchers["mosquitto"]("python -m pytest tests/test_mosquitto.py ")
    assert matchers["kafka"]("/usr/bin/java -Xmx1g -cp /k/* kafka.Kafka /k/server.properties ")
