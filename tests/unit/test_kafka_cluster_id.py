"""KRaft cluster ids that the Kafka storage tool accepts."""

from __future__ import annotations

import base64
import os

import pytest

from runtime.services import kafka


def test_an_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b"\xf8" + bytes(15), bytes(16)])  # the first encodes as "-A..."
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).startswith(b"-")
    assert kafka.new_cluster_id() == "A" * 22


def test_ids_are_22_url_safe_characters_of_16_random_bytes() -> None:
    ids = {kafka.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
