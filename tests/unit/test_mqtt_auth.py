"""roadledger.mqtt_auth: Mosquitto's password-file format, the ACL, concurrent edits."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from roadledger.mqtt_auth import (
    MqttAccount,
    MqttAuthError,
    PasswordFile,
    acl_text,
    hash_password,
    verify_password,
)


def test_hash_is_mosquitto_passwd_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    hashed = hash_password("secret", salt=salt)
    # $7$ = PBKDF2-SHA512, 101 iterations, 12-byte salt, 64-byte digest, standard base64.
    assert hashed.startswith("$7$101$AAECAwQFBgcICQoL$")
    assert len(hashed.split("$")[4]) == 88
    assert verify_password("secret", hashed)
    assert not verify_password("secreT", hashed)
    assert not verify_password("secret", "$6$abc$def")
    assert not verify_password("secret", "plain")


def test_reads_what_the_real_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is not installed; run `scripts/services up`")
    path = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cret"], check=True)
    store = PasswordFile(path)
    assert store.check("alice", "s3cret")
    assert not store.check("alice", "s3cre")
    store.set("bob", "other")  # kept alongside the tool's line
    assert store.check("alice", "s3cret")
    assert store.check("bob", "other")


def test_issue_replace_remove_keep_other_lines(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwd")
    assert store.set_many([MqttAccount("svc", "pw")])
    assert not store.set_many([MqttAccount("svc", "pw")]), "same password: file unchanged"
    first = store.issue("veh-1")
    second = store.issue("veh-1")
    assert not store.check("veh-1", first)
    assert store.check("veh-1", second)
    assert first not in store.path.read_text()
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.remove("veh-1")
    assert not store.remove("veh-1")
    assert set(store.entries()) == {"svc"}


def test_concurrent_issues_lose_no_line(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwd")
    with ThreadPoolExecutor(8) as pool:
        issued = list(pool.map(lambda i: store.issue(f"dev-{i}"), range(40)))
    passwords = dict(enumerate(issued))
    assert all(store.check(f"dev-{i}", pw) for i, pw in passwords.items())


@pytest.mark.parametrize("username", ["a/b", "x+", "#", "a b", "", "a:b", "é"])
def test_usernames_that_could_widen_the_acl_are_refused(tmp_path: Path, username: str) -> None:
    with pytest.raises(MqttAuthError, match="username"):
        PasswordFile(tmp_path / "passwd").issue(username)


def test_acl_gives_devices_their_own_topic_only() -> None:
    text = acl_text("bridge", "sim").splitlines()
    assert "pattern write roadledger/v1/telemetry/%u" in text
    assert text[text.index("user bridge") + 1] == "topic read roadledger/v1/telemetry/#"
    assert text[text.index("user sim") + 1] == "topic write roadledger/v1/telemetry/#"
    assert "user sim" not in acl_text("bridge", None)
