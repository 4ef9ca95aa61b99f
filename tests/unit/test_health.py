"""Health reports: what a process writes, how ``roadledger health`` judges it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from roadledger import health
from roadledger.health import FORMAT, health_file, read_health, report_health, write_health
from roadledger.resilience import Dependency
from roadledger.settings import Settings
from tests.support.pipeline import wait_until

LOG = logging.getLogger("test.health")
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _dependencies(clock: Clock) -> tuple[Dependency, Dependency]:
    return Dependency("PostgreSQL", LOG, clock=clock), Dependency("Kafka", LOG, clock=clock)


def _write(path: Path, deps: tuple[Dependency, ...], *, at: float, stopped: bool = False) -> None:
    write_health(path, "ingest", deps, started=at - 60, stopped=stopped, now=lambda: at)


def _listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def test_every_service_up_is_ok(tmp_path: Path) -> None:
    _write(tmp_path / "ingest.json", _dependencies(Clock(0)), at=NOW)
    [report] = read_health(tmp_path, stale_after_s=15, now=lambda: NOW + 3)
    assert (report.name, report.state, report.ok) == ("ingest", "ok", True)
    assert report.detail == "PostgreSQL, Kafka up"


def test_a_service_down_is_degraded_and_says_for_how_long(tmp_path: Path) -> None:
    clock = Clock(100.0)
    database, kafka = _dependencies(clock)
    database.down(ConnectionRefusedError("refused"))
    clock.now = 112.0
    _write(tmp_path / "ingest.json", (database, kafka), at=NOW)
    [report] = read_health(tmp_path, stale_after_s=15, now=lambda: NOW)
    assert (report.state, report.ok) == ("degraded", False)
    assert report.detail == "PostgreSQL down for 12 s"


def test_a_report_not_renewed_is_stale(tmp_path: Path) -> None:
    _write(tmp_path / "ingest.json", _dependencies(Clock(0)), at=NOW)
    [report] = read_health(tmp_path, stale_after_s=15, now=lambda: NOW + 15.5)
    assert (report.state, report.detail) == ("stale", "no report for 16 s")


def test_a_clean_stop_is_stopped_not_stale(tmp_path: Path) -> None:
    _write(tmp_path / "ingest.json", _dependencies(Clock(0)), at=NOW, stopped=True)
    [report] = read_health(tmp_path, stale_after_s=15, now=lambda: NOW + 3600)
    assert (report.state, report.ok) == ("stopped", False)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "unreadable report"),
        (json.dumps({"format": "other/v1"}), "not a roadledger-health/v1 report"),
        (json.dumps({"format": FORMAT, "pid": 1}), "unreadable report: 'written'"),
    ],
)
def test_a_damaged_report_is_stale_with_the_reason(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "ingest.json").write_text(text)
    [report] = read_health(tmp_path, stale_after_s=15, now=lambda: NOW)
    assert report.state == "stale"
    assert reason in report.detail


def test_no_directory_is_no_reports(tmp_path: Path) -> None:
    assert read_health(tmp_path / "absent", stale_after_s=15) == []


def test_one_file_per_process_of_a_deployment(tmp_path: Path, settings: Settings) -> None:
    plain = settings.model_copy(update={"health_dir": tmp_path})
    named = plain.model_copy(update={"kafka_group_instance": "sequencer-2"})
    assert health_file(plain, "sequencer") == tmp_path / "sequencer.json"
    assert health_file(named, "sequencer") == tmp_path / "sequencer.sequencer-2.json"


async def test_the_reporter_writes_until_stopped_then_says_stopped(
    tmp_path: Path, settings: Settings
) -> None:
    settings = settings.model_copy(update={"health_dir": tmp_path, "health_interval_s": 0.05})
    database, kafka = _dependencies(Clock(0))
    stop = asyncio.Event()
    task = asyncio.create_task(report_health(settings, "sequencer", [database, kafka], stop))
    path = tmp_path / "sequencer.json"
    written: list[dict[str, object]] = []

    def renewed() -> bool:  # three different reports seen
        if path.exists():
            report = json.loads(path.read_text())
            if not written or report["written"] != written[-1]["written"]:
                written.append(report)
        return len(written) >= 3

    await wait_until(renewed, "three different reports", 5, every_s=0.01, observed=lambda: written)
    database.down(ConnectionResetError("reset"))
    stop.set()
    await asyncio.wait_for(task, 5)
    final = json.loads(path.read_text())
    assert final["stopped"] is True
    assert final["dependencies"][0] == {
        "name": "PostgreSQL", "up": False, "down_for_s": 0.0, "outages": 1,
    }  # fmt: skip
    assert _listing(tmp_path) == ["sequencer.json"]  # no partial file left


async def test_a_report_that_cannot_be_written_is_one_warning_not_a_crash(
    tmp_path: Path,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "file").write_text("")
    settings = settings.model_copy(
        update={"health_dir": tmp_path / "file" / "health", "health_interval_s": 0.01}
    )
    attempts = 0
    tried_five = asyncio.Event()

    def counting(*args: Any, **kwargs: Any) -> None:
        nonlocal attempts
        attempts += 1
        if attempts >= 5:
            tried_five.set()
        write_health(*args, **kwargs)

    monkeypatch.setattr(health, "write_health", counting)
    stop = asyncio.Event()
    task = asyncio.create_task(report_health(settings, "bridge", [], stop))
    await asyncio.wait_for(tried_five.wait(), 5)  # five failed writes: still one line
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [r.message.split(":")[0] for r in caplog.records] == [
        f"cannot write health to {tmp_path / 'file' / 'health' / 'bridge.json'}"
    ]


def test_cli_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROADLEDGER_HEALTH_DIR", str(tmp_path))
    assert main(["health"]) == 2
    assert "no process reports" in capsys.readouterr().out
    now = time.time()
    clock = Clock(0)
    write_health(
        tmp_path / "ingest.json", "ingest", _dependencies(clock), started=now, now=lambda: now
    )
    assert main(["health"]) == 0
    assert main(["health", "--require", "ingest", "--require", "sequencer"]) == 1
    assert "sequencer                missing" in capsys.readouterr().out
    down = Dependency("Kafka", LOG, clock=clock)
    down.down(OSError("unreachable"))
    write_health(tmp_path / "bridge.json", "bridge", [down], started=now, now=lambda: now)
    assert main(["health"]) == 1
    out = capsys.readouterr().out
    assert "bridge                   degraded" in out
    assert "Kafka down for 0 s" in out
    assert main(["health", "--require", "ingest"]) == 0


def test_a_report_carries_the_process_metrics(tmp_path: Path) -> None:
    from roadledger.metrics import Sample

    samples = [Sample("roadledger_x_total", 4, (("reason", "schema"),)), Sample("roadledger_y", 2)]
    path = tmp_path / "ingest.json"
    write_health(path, "ingest", [], started=NOW - 5, samples=samples, now=lambda: NOW)
    [report] = read_health(tmp_path, stale_after_s=10, now=lambda: NOW)
    assert report.samples == tuple(samples)
    raw = json.loads(path.read_text())
    raw["metrics"].append(["bad name", {}, 1])  # a broken entry is left out, not fatal
    raw["metrics"].append("nonsense")
    path.write_text(json.dumps(raw))
    [report] = read_health(tmp_path, stale_after_s=10, now=lambda: NOW)
    assert report.samples == tuple(samples)


async def test_a_failing_metrics_source_costs_the_samples_not_the_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from roadledger.metrics import Sample

    calls = []

    def broken() -> list[Sample]:
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("a bad metric name")
        return [Sample("roadledger_x_total", 1)]

    settings = Settings(health_dir=tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(
        report_health(settings, "ingest", [], stop, every_s=0.01, metrics=broken)
    )
    await wait_until(lambda: len(calls) >= 3, "three reports written")
    stop.set()
    await task
    [report] = read_health(tmp_path, stale_after_s=60)
    assert report.state == "stopped"  # the last report was written, without samples
    assert report.samples == ()
    assert caplog.text.count("metrics left out of its health report") == 1
