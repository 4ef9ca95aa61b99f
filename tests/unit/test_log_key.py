"""The logs' signing key: created once in development, required in production, kept secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from contracts.errors import CommandError
from roadledger.log_key import load_log_key
from roadledger.settings import DEV_DATABASE_PASSWORD, Settings


def test_development_creates_a_private_key_file_once(tmp_path: Path) -> None:
    settings = Settings(log_key_file=tmp_path / "keys" / "log.skey")
    first = load_log_key(settings)
    assert settings.log_key_path.stat().st_mode & 0o777 == 0o600
    again = load_log_key(settings)
    origin = settings.log_origin(2)
    assert first.vkey(origin) == again.vkey(origin)
    assert first.vkey(origin) != first.vkey(settings.log_origin(1)), "one key name per log"
    assert "secret" in repr(first)
    assert settings.log_key_path.read_text() not in repr(first)


def test_checkpoints_verify_under_the_published_vkey(tmp_path: Path) -> None:
    from chain.note_signers import Ed25519Verifier

    key = load_log_key(Settings(log_key_file=tmp_path / "log.skey"))
    origin = "roadledger.local/telemetry/0"
    signed = sign_checkpoint(Checkpoint(origin, 1, bytes(32)), key.signer(origin))
    SignedCheckpoint.from_text(signed.to_text()).verify_log_signature(
        Ed25519Verifier.from_vkey(key.vkey(origin))
    )


def test_production_refuses_to_invent_a_key(tmp_path: Path) -> None:
    settings = Settings(
        env="production",
        database_url=f"postgresql://rl:not-{DEV_DATABASE_PASSWORD}@db/roadledger",
        mqtt_bridge_password="a-real-bridge-secret",
        mqtt_sim_password="",  # no simulator account in production
        log_key_file=tmp_path / "missing.skey",
    )
    with pytest.raises(CommandError, match=r"missing\.skey not found"):
        load_log_key(settings)
    assert not settings.log_key_path.exists()


def test_a_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(log_key_file=tmp_path / "log.skey")
    load_log_key(settings)
    os.chmod(settings.log_key_path, 0o644)
    with pytest.raises(CommandError, match="readable by others"):
        load_log_key(settings)
    settings.log_key_path.write_text("not a key\n")
    os.chmod(settings.log_key_path, 0o600)
    with pytest.raises(CommandError, match=r"log key file .*log\.skey: "):
        load_log_key(settings)
