"""The truth file: written line by line, read back, and the outcome model behind it."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from chain.errors import RejectReason
from device_sim.outcomes import OutcomeModel
from device_sim.truth import MessageTruth, TruthWriter, WarningTruth, read_truth

MESSAGE = MessageTruth(
    0, "veh-000001", 1, 1_767_225_600_000, "ab" * 32, 1_767_225_600_000, None, "stored"
)
WARNING = WarningTruth("teleport", "veh-000001", "teleport", 1, 2, 3, 4, 5, {"distance_m": 20000.0})


def test_message_lines_are_exactly_the_json_of_their_fields() -> None:
    for line in (
        MESSAGE,
        MessageTruth(
            7, "rsu-0001", None, None, "cd" * 32, 5, "replay+duplicate_delivery", "duplicate"
        ),
    ):
        obj = json.loads(line.to_json())
        assert obj.pop("kind") == "message"
        assert MessageTruth.from_dict(obj) == line


def test_written_files_read_back(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    with TruthWriter(path) as writer:
        writer.run({"seed": 3})
        writer.message(MESSAGE)
        writer.message(
            MessageTruth(1, "veh-000001", 1, 1, "ab" * 32, 2, "duplicate_delivery", "duplicate")
        )
        writer.warning(WARNING)
        writer.summary(published=2, acked=2)
    truth = read_truth(path)
    assert truth.run == {"format": 1, "seed": 3}
    assert truth.messages[0] == MESSAGE
    assert truth.warnings == [WARNING]
    assert truth.expected_counts() == {"stored": 1, "duplicate": 1}
    assert truth.summary == {
        "messages": 2,
        "expected": {"duplicate": 1, "stored": 1},
        "warnings": 1,
        "published": 2,
        "acked": 2,
        "complete": True,
    }


def test_optional_events_read_back_apart_and_old_lines_are_required(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    unseen = WarningTruth("drift_off_road", "veh-2", "drift_off_road", 1, 2, 3, 4, 5, {}, False)
    with TruthWriter(path) as writer:
        writer.run({"seed": 3})
        writer.warning(WARNING)
        writer.warning(unseen)
        writer.summary(published=0, acked=0)
    with path.open("a") as out:  # a line written before "required" existed
        old = json.loads(WARNING.to_json())
        del old["required"]
        out.write(json.dumps({**old, "device": "veh-3"}) + "\n")
    truth = read_truth(path)
    assert truth.warnings == [WARNING, dataclasses.replace(WARNING, device="veh-3")]
    assert truth.optional == [unseen]
    assert truth.summary is not None
    assert truth.summary["warnings"] == 1  # required events only


def test_unknown_kinds_are_ignored_and_broken_lines_named(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    path.write_text('{"kind":"run"}\n{"kind":"future-thing","x":1}\n' + MESSAGE.to_json() + "\n")
    assert read_truth(path).messages == [MESSAGE]
    path.write_text('{"kind":"run"}\n{"kind":"message"\n')
    with pytest.raises(ValueError, match=r"truth\.jsonl:2: not JSON"):
        read_truth(path)
    path.write_text('{"kind":"run"}\n{"kind":"message","i":0}\n')
    with pytest.raises(ValueError, match="message line without"):
        read_truth(path)
    path.write_text(MESSAGE.to_json() + "\n")
    with pytest.raises(ValueError, match="no run line"):
        read_truth(path)


def test_writer_on_a_stream_leaves_it_open() -> None:
    stream = io.StringIO()
    with TruthWriter(stream) as writer:
        writer.summary(None, None)
    assert json.loads(stream.getvalue())["complete"] is False


def test_outcome_model_follows_the_pipeline_check_order() -> None:
    model = OutcomeModel(tracked=["veh-1"])
    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    assert model.decide("veh-1", 1, a, None) == "stored"
    assert model.decide("veh-1", 1, a, None) == "duplicate"
    assert model.decide("veh-1", 1, b, None) == "quarantine:conflict"
    assert model.decide("veh-1", 1, b, None) == "quarantine:conflict"  # re-sent: again
    assert model.decide("veh-1", 1, a, RejectReason.CLOCK_SKEW) == "duplicate"  # dedupe first
    assert model.decide("veh-1", 2, c, RejectReason.CLOCK_SKEW) == "quarantine:clock_skew"
    assert model.decide("veh-1", 2, c, RejectReason.CLOCK_SKEW) == "quarantine:clock_skew"
    assert model.decide("veh-1", 1, a, RejectReason.BAD_SIGNATURE) == "quarantine:bad_signature"
    assert model.decide("veh-1", None, c, RejectReason.MALFORMED) == "quarantine:malformed"
    assert model.decide("veh-2", 1, a, None) == "stored"  # untracked: never repeats
    assert model.decide("veh-2", 1, a, RejectReason.REVOKED_KEY) == "quarantine:revoked_key"
