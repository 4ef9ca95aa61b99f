"""Absent known-answer material: a failure under CI, a skip on a developer's checkout."""

from __future__ import annotations

import pytest

from tests.support.shared_material import missing_material_fails, running_in_ci


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "on", " true "])
def test_under_ci_absent_material_fails(value: str) -> None:
    assert running_in_ci({"CI": value})
    assert missing_material_fails({"CI": value, "HOME": "/root"})


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}, {"CI": "no"}])
def test_outside_ci_absent_material_skips(environ: dict[str, str]) -> None:
    assert not running_in_ci(environ)
    assert not missing_material_fails(environ)
