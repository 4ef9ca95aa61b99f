"""Fixtures shared by the certificate tests of this folder."""

from __future__ import annotations

import pytest

from tests.unit.chain.test_certificate_scenario import Scenario, make_scenario


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The realistic certificate of ``test_certificate_scenario``, built once per module."""
    return make_scenario()
