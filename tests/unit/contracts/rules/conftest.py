"""A valid rules document to vary in the tests."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

SQUARE = [[100, 100], [100, 200], [200, 200], [200, 100]]


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "roadledger-rules/1",
        "org_id": "metro-police",
        "rule_set": "city",
        "version": 3,
        "effective_from_ms": 1_000_000,
        "speed_limits": [
            {"road_class": "local", "max_kmh": 30},
            {"road_class": "local", "vehicle_class": "truck", "max_kmh": 20},
            {"segment_id": 7, "max_kmh": 40},
        ],
        "geofences": [
            {"id": "old-town", "kind": "no_entry", "polygon": copy.deepcopy(SQUARE)},
            {
                "id": "school",
                "kind": "speed_zone",
                "max_speed_kmh": 20,
                "vehicle_classes": ["car"],
                "polygon": [[0, 0], [0, 50], [50, 25]],
                "windows": [{"days": [4], "start_min": 1320, "end_min": 360}],
            },
        ],
        "thresholds": {"speeding_tolerance_kmh": 3},
    }
    doc.update(changes)
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


@pytest.fixture
def valid_doc() -> dict[str, Any]:
    return document()
