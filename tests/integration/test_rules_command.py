"""``roadledger rules`` end to end, as a newcomer runs it, on a scratch schema.

A plain (synchronous) test: the command runs its own event loop, as it does from a shell. The
scratch schema is chosen through the database URL (``?search_path=``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from app.cli import main
from roadledger.db import telemetry_schema
from roadledger.settings import Settings

pytestmark = pytest.mark.postgres

DOC = {
    "format": "roadledger-rules/1",
    "org_id": "metro-police",
    "rule_set": "city",
    "version": 1,
    "effective_from_ms": 1_000,
    "speed_limits": [{"road_class": "local", "max_kmh": 30}],
    "thresholds": {"speeding_tolerance_kmh": 3},
}
# Metro Police's jurisdiction: rules apply only inside the publishing authority's.
AREA = "[[524000000,132000000],[524000000,136000000],[527000000,136000000],[527000000,132000000]]"


async def _schema(url: str, schema: str, *, drop: bool) -> int:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        if not drop:
            await conn.execute(
                await conn.fetchval("SELECT format('CREATE SCHEMA %I', $1::text)", schema)
            )
            return 0
        outbox: int = await conn.fetchval(
            "SELECT count(*) FROM ledger_outbox WHERE device_id = 'rules:metro-police'"
        )
        await telemetry_schema.drop(conn)
        await conn.execute(
            await conn.fetchval("SELECT format('DROP SCHEMA %I CASCADE', $1::text)", schema)
        )
        return outbox
    finally:
        await conn.close()


def test_keygen_sign_check_publish_list_show(
    postgres: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    key, doc, signed = tmp_path / "police.key", tmp_path / "city.json", tmp_path / "city.jws"
    doc.write_text(json.dumps(DOC))
    assert main(["rules", "keygen", "--out", str(key)]) == 0
    public_key = capsys.readouterr().out.strip()
    assert main(["rules", "check", str(doc)]) == 0
    assert main(["rules", "sign", str(doc), "--key-file", str(key), "--kid", "k1",
                 "--out", str(signed)]) == 0  # fmt: skip
    assert main(["rules", "check", str(signed), f"--public-key={public_key}"]) == 0
    assert "signature verifies (kid k1): metro-police/city@1" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**DOC, "speed_limits": [{"road_class": "lane", "max_kmh": 3}]}))
    assert main(["rules", "check", str(bad)]) == 1
    assert "speed_limits[0].road_class: must be one of" in capsys.readouterr().err

    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    url = postgres.database_url
    asyncio.run(_schema(url, schema, drop=False))
    try:
        separator = "&" if "?" in url else "?"
        monkeypatch.setenv("ROADLEDGER_DATABASE_URL", f"{url}{separator}search_path={schema}")
        # Unregistered organisation first: refused with the reason.
        assert main(["rules", "publish", str(signed)]) == 1
        assert "signature.header.kid: no organisation has a key 'k1'" in capsys.readouterr().err
        assert main(["rules", "register-key", "metro-police", "k1", "--key-file", str(key),
                     "--valid-from", "0"]) == 0  # fmt: skip
        # An authority without a jurisdiction: its rules would apply nowhere.
        assert main(["rules", "publish", str(signed)]) == 1
        assert "has no jurisdiction" in capsys.readouterr().err
        assert main(["rules", "register-key", "metro-police", "k2", "--key-file", str(key),
                     f"--jurisdiction={AREA}"]) == 0  # fmt: skip
        assert main(["rules", "publish", str(signed)]) == 0
        assert "published metro-police/city@1" in capsys.readouterr().out
        assert main(["rules", "publish", str(signed)]) == 1
        assert "version: must be greater than 1" in capsys.readouterr().err
        assert main(["rules", "list"]) == 0
        assert "metro-police/city@1" in capsys.readouterr().out
        assert main(["rules", "show", "--at", "999"]) == 0
        assert "in force: builtin@0" in capsys.readouterr().out
        assert main(["rules", "show", "--at", "1000"]) == 0
        assert "inside the jurisdiction of metro-police" in capsys.readouterr().out
        assert main(["rules", "show", "--at", "1000", "--where", "525000000,134000000"]) == 0
        out = capsys.readouterr().out
        assert "in force: metro-police/city@1" in out
        assert "speeding_tolerance_kmh = 3 km/h (metro-police/city@1)" in out
    finally:
        outbox = asyncio.run(_schema(url, schema, drop=True))
    assert outbox == 1


def test_an_oversize_file_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Read up to the signed limit and no further: a 1 GiB (sparse) file is refused at once,
    before any database work (the database here is unreachable)."""
    from contracts.rules.limits import MAX_DOCUMENT_BYTES, MAX_SIGNED_BYTES

    monkeypatch.setenv("ROADLEDGER_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:9/none")

    huge = tmp_path / "huge.jws"
    with huge.open("wb") as file:
        file.truncate(1 << 30)
    for action in ("check", "publish"):
        assert main(["rules", action, str(huge)]) == 1
        assert f"over {MAX_SIGNED_BYTES} bytes" in capsys.readouterr().err
    # Under the signed limit but over the document's: the parser names its own limit.
    doc = tmp_path / "big.json"
    text = json.dumps(DOC)
    doc.write_text(text[:-1] + " " * (MAX_DOCUMENT_BYTES - len(text) + 1) + "}")
    assert main(["rules", "check", str(doc)]) == 1
    assert f"limit is {MAX_DOCUMENT_BYTES}" in capsys.readouterr().err
