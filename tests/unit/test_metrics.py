"""The Prometheus text format of roadledger.metrics, read back by prometheus_client's own
parser (a tool we did not write), and the counters the stages expose."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics.warnings.engine import EngineStats
from ingest.bridge import BridgeStats
from ingest.ledger_writer import LedgerWriterStats
from roadledger.metrics import MetricsBoard, Sample, counters, render


def test_render_known_answer() -> None:
    text = render(
        [
            Sample("roadledger_x_total", 3, (("reason", "bad_signature"),)),
            Sample("roadledger_x_total", 1, (("reason", 'a"b\\c\nd'),)),
            Sample("roadledger_size", 2.5),
        ]
    )
    assert text == (
        "# TYPE roadledger_size gauge\n"
        "roadledger_size 2.5\n"
        "# TYPE roadledger_x_total counter\n"
        'roadledger_x_total{reason="a\\"b\\\\c\\nd"} 1\n'
        'roadledger_x_total{reason="bad_signature"} 3\n'
    )


def test_prometheus_reads_what_we_write() -> None:
    samples = [
        *counters("roadledger_bridge", {"received": 10, "acked": 9}, process="bridge"),
        Sample("roadledger_log_tree_size", 1_000_000, (("log", "roadledger.example/0"),)),
        Sample("roadledger_up", float("nan")),
    ]
    families = {f.name: f for f in text_string_to_metric_families(render(samples))}
    assert families["roadledger_bridge_received"].type == "counter"
    [received] = families["roadledger_bridge_received"].samples
    assert (received.name, received.labels, received.value) == (
        "roadledger_bridge_received_total",
        {"process": "bridge"},
        10.0,
    )
    [size] = families["roadledger_log_tree_size"].samples
    assert size.labels == {"log": "roadledger.example/0"}
    assert size.value == 1e6


@pytest.mark.parametrize(
    ("name", "labels"),
    [("2bad", ()), ("has-dash", ()), ("ok", (("__reserved", "x"),)), ("ok", (("a-b", "x"),))],
)
def test_bad_names_are_refused(name: str, labels: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError, match="not a Prometheus"):
        Sample(name, 1, labels)


def test_a_board_takes_sources_that_join_later() -> None:
    board = MetricsBoard()
    assert board() == []
    stats = LedgerWriterStats(entries=5, blocks=2, tree_sizes={1: 40, 0: 30})
    board.add(stats.samples)
    stats.entries = 7  # read at report time, not when added
    names = {(s.name, s.labels): s.value for s in board()}
    assert names[("roadledger_sequencer_entries_total", ())] == 7
    assert names[("roadledger_ledger_tree_size", (("partition", "0"),))] == 30


def test_stage_counters() -> None:
    bridge = BridgeStats(10, 9, 8, 2, 5, 1, 0, 3, 1)
    by_name = {s.name: s.value for s in bridge.samples()}
    assert by_name["roadledger_bridge_acked_total"] == 8
    assert by_name["roadledger_bridge_in_flight"] == 2
    assert "roadledger_bridge_in_flight_total" not in by_name
    engine = EngineStats(records=4, stored=2)
    engine.by_type["speeding"] += 2
    assert Sample("roadledger_warnings_total", 2, (("type", "speeding"),)) in engine.samples()


def test_verifier_counters_name_each_rejection_reason_as_a_label() -> None:
    from ingest.verifier_routing import VerifierStats

    stats = VerifierStats(received=5, forwarded=3)
    stats.rejected["bad_signature"] += 2
    by_key = {(s.name, s.labels): s.value for s in stats.samples()}
    assert by_key[("roadledger_verifier_received_total", ())] == 5
    reason = (("reason", "bad_signature"),)
    assert by_key[("roadledger_quarantined_total", reason)] == 2
    assert text_string_to_metric_families(render(stats.samples()))  # all valid names
