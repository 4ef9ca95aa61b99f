"""Fixtures shared by every test: settings and the shared known-answer material."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roadledger.settings import Settings, load_settings
from tests.support.shared_material import missing_material_fails

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, as the CLI would build them."""
    return load_settings()


@pytest.fixture(scope="session")
def shared_dir(settings: Settings) -> Path:
    """``ROADLEDGER_SHARED_DIR`` (default ``../shared``). Absent, the test fails under CI
    (``CI=true``: conformance must be checked there) and skips elsewhere, with a clear message."""
    path = settings.shared_dir
    if not path.is_absolute():
        path = (PROJECT_ROOT / path).resolve()
    if not (path / "vectors").is_dir():
        message = f"shared material not found at {path} (set ROADLEDGER_SHARED_DIR)"
        if missing_material_fails(os.environ):
            pytest.fail(f"{message}; under CI the known-answer tests may not skip")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def vectors_dir(shared_dir: Path) -> Path:
    """The known-answer vectors (RFC 9162 Merkle, RFC 8037 JWS)."""
    return shared_dir / "vectors"
