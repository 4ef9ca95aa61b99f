"""The page's RFC 9162 inclusion check (``dashboard/static/merkle.js``, WebCrypto SHA-256), run
in Chromium on the known-answer vectors of ``shared/vectors/rfc9162-merkle.json``: every
inclusion proof there leads to its root, and every negative inclusion case does not."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser

from roadledger.settings import Settings
from tests.integration.dashboard.browser import guarded
from tests.support.served import served_api

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

CHECK = """async (cases) => {
  const m = await import('/ui/merkle.js');
  const out = [];
  for (const c of cases) {
    const root = await m.rootFromInclusion(c.index, c.size, m.hexBytes(c.leaf), c.path);
    const hex = root && Array.from(root, (x) => x.toString(16).padStart(2, '0')).join('');
    out.push(hex === c.root);
  }
  return out;
}"""


def _b64(hexes: list[str]) -> list[str]:
    return [base64.b64encode(bytes.fromhex(h)).decode() for h in hexes]


async def test_the_page_checks_inclusion_proofs_as_rfc_9162_says(
    api_settings: Settings, api_pool: asyncpg.Pool, browser: Browser, tmp_path: Path,
    vectors_dir: Path,
) -> None:  # fmt: skip
    path = vectors_dir / "rfc9162-merkle.json"
    if not path.exists():
        pytest.fail(f"{path} is absent (ROADLEDGER_SHARED_DIR)")
    vectors = json.loads(path.read_text())
    roots = {r["size"]: r["root_hex"] for r in vectors["roots"]}
    good: list[dict[str, Any]] = [
        {"index": c["index"], "size": c["size"], "leaf": vectors["leaf_hashes_hex"][c["index"]],
         "root": roots[c["size"]], "path": _b64(c["proof_hex"])}
        for c in vectors["inclusion"]
    ]  # fmt: skip
    bad: list[dict[str, Any]] = [
        {"index": c["index"], "size": c["size"], "leaf": c["leaf_hash_hex"], "root": c["root_hex"],
         "path": _b64(c["proof_hex"])}
        for c in vectors["negative"] if c["kind"] == "inclusion"
    ]  # fmt: skip
    assert len(good) >= 20
    assert len(bad) >= 3
    async with served_api(api_settings, api_pool) as url, guarded(browser, url, tmp_path) as tab:
        await tab.page.goto(f"{url}/ui/")
        assert await tab.page.evaluate(CHECK, good) == [True] * len(good)
        assert await tab.page.evaluate(CHECK, bad) == [False] * len(bad)
