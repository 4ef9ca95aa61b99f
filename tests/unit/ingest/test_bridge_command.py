"""app.commands.bridge: its help states the delivery guarantee; bad options are refused."""

from __future__ import annotations

import argparse

import pytest

from app.commands import bridge


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadledger bridge",
        description=bridge.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bridge.configure(parser)
    return parser


def test_help_explains_the_delivery_guarantee() -> None:
    text = " ".join(_parser().format_help().split())
    for promise in (
        "only after Kafka has it durably",
        "persistent MQTT session",
        "ROADLEDGER_BRIDGE_MAX_INFLIGHT",
        "duplicates are possible, losses are not",
    ):
        assert promise in text


def test_defaults() -> None:
    args = _parser().parse_args([])
    assert args.client_id is None, "None: settings.bridge_client_id decides"
    assert args.topic_filter == "roadledger/v1/telemetry/+"
    assert (args.drain_timeout, args.stats_interval) == (30.0, 10.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--drain-timeout", "-1"],
        ["--drain-timeout", "soon"],
        ["--drain-timeout", "inf"],
        ["--stats-interval", "0"],
        ["--stats-interval", "nan"],
    ],
)
def test_bad_durations_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2
    assert "seconds" in capsys.readouterr().err
