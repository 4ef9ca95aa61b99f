"""``roadledger score`` end to end on the embedded services: a short scenario through the
pipeline and the analytics engine, warnings scored per type against the truth file."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import build_parser
from app.commands import score
from roadledger.settings import Settings, load_settings

pytestmark = pytest.mark.slow

_SERVICE_VARS = ("ROADLEDGER_DATABASE_URL", "ROADLEDGER_MQTT_URL", "ROADLEDGER_KAFKA_BOOTSTRAP")


@pytest.fixture
def embedded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings with a private data directory and no real service configured."""
    for name in _SERVICE_VARS:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    yield load_settings(data_dir=data)
    # As root the cluster lives in /var/tmp/roadledger-<hash>/ behind a symlink: remove it.
    real = (data / "embedded" / "postgres").resolve()
    if real.parent.name.startswith("roadledger-"):
        shutil.rmtree(real.parent, ignore_errors=True)


def _args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        ["score", "--vehicles", "12", "--rsus", "2", "--rate", "60", "--duration", "15", *extra]
    )


def test_score_prints_the_table_and_passes_the_floor(
    embedded_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args("--scenario", "teleport", "--scenario", "replay", "--scenario", "clock_skew")
    assert score.run(args, embedded_settings) == 0
    out = capsys.readouterr().out
    for kind in ("teleport", "replay", "clock_skew"):
        line = next(line for line in out.splitlines() if line.startswith(kind))
        assert line.split()[-2:] == ["1.00", "1.00"], line
    assert "every warning type at or above 0.95" in out
