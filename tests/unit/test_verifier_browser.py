"""The certificate page (``dashboard/static/verifier/verify.html``) in headless Chromium.

The page is served as static files on loopback under a strict ``script-src 'self'`` policy;
each certificate of the corpus (``tests/support/certificate_corpus.py``) is dropped onto its
drop zone with the case's keys and K typed in, and the page must say what ``roadledger
verify`` says: verified, with the summary lines the command prints, or the first failing item
and its detail. No
console error, and no request leaves loopback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.commands.verify import _one_line, _print_summary
from chain.certificate_verify import verify_certificate_file
from chain.cosignature import CosignatureVerifier
from chain.note_signers import Ed25519Verifier
from tests.conftest import PROJECT_ROOT
from tests.support.certificate_corpus import Case, all_cases, python_verdict
from tests.support.shared_material import missing_material_fails
from tests.support.static_browser import PageRecord, chromium_missing, chromium_page, static_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

STATIC = PROJECT_ROOT / "dashboard" / "static"

DROP = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "application/json" }));
  document.getElementById("result").dataset.verdict = "none";
  const drop = new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true });
  document.getElementById("drop-zone").dispatchEvent(drop);
}"""
# A selector, not a JS predicate: the page's policy forbids eval, which a string predicate needs.
DONE = ", ".join(f"#result[data-verdict={v}]" for v in ("verified", "failed", "error"))


@pytest.fixture(scope="module")
def page() -> Iterator[tuple[Page, PageRecord]]:
    if (why := chromium_missing()) is not None:
        if missing_material_fails(os.environ):
            pytest.fail(why)
        pytest.skip(why)
    with static_server(STATIC) as base, chromium_page() as (page, record):
        page.goto(f"{base}verifier/verify.html")
        page.wait_for_selector("body[data-ready=true]")
        yield page, record


def drop(page: Page, case: Case) -> str:
    """Type the case's trust in, drop its file, wait for the verdict; return it."""
    page.fill("#log-keys", "\n".join(case.log_keys))
    page.fill("#witness-keys", "\n".join(case.witness_keys))
    k = case.min_witnesses
    page.fill("#min-witnesses", "" if k is None else str(k))
    page.fill("#expected-device", case.device or "")
    page.fill("#expected-vin", case.vin or "")
    page.evaluate(DROP, [f"{case.name}.json", base64.b64encode(case.data).decode()])
    page.wait_for_selector(DONE, state="attached", timeout=30_000)
    verdict: str = page.get_attribute("#result", "data-verdict") or ""
    return verdict


def cli_summary(case: Case) -> str:
    """What ``roadledger verify`` prints for a case that verifies."""
    log_keys = [Ed25519Verifier.from_vkey(k) for k in case.log_keys]
    witnesses = [CosignatureVerifier.from_vkey(k) for k in case.witness_keys]
    k = len(witnesses) if case.min_witnesses is None else case.min_witnesses
    report = verify_certificate_file(
        io.BytesIO(case.data), log_keys, witnesses, k,
        expected_device_id=case.device, expected_vin=case.vin,
    )  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _print_summary(report, len(witnesses))
    return out.getvalue().rstrip("\n")


def test_the_page_says_what_roadledger_verify_says(
    page: tuple[Page, PageRecord], tmp_path: Path
) -> None:
    browser, record = page
    wrong: list[str] = []
    for case in all_cases():
        verdict = drop(browser, case)
        expected = python_verdict(case)
        if expected is None:
            summary = browser.inner_text("#summary")
            if verdict != "verified" or browser.inner_text("#verdict") != "Verified":
                wrong.append(f"{case.name}: {verdict} {browser.inner_text('#result')!r}")
            elif summary != cli_summary(case):
                wrong.append(f"{case.name}:\n  page: {summary!r}\n  cli:  {cli_summary(case)!r}")
            continue
        item, detail = expected
        shown = (
            verdict,
            browser.inner_text("#verdict"),
            browser.inner_text("#failure-item"),
            browser.inner_text("#failure-detail"),
        )
        if shown != ("failed", f"Not verified: {item}", item, _one_line(detail)):
            wrong.append(f"{case.name}:\n  page:   {shown}\n  python: {expected}")
        if case.name in ("valid", "summary-distance_m"):
            browser.screenshot(path=str(tmp_path / f"{case.name}.png"), full_page=True)
    assert not wrong, "\n".join(wrong)
    assert (tmp_path / "summary-distance_m.png").stat().st_size > 10_000
    assert record.console_errors == []
    assert record.page_errors == []
    assert record.blocked == [], "requests left loopback"
    assert all(url.startswith("http://127.0.0.1:") for url in record.requests)


def test_unusable_keys_are_named_not_judged(page: tuple[Page, PageRecord]) -> None:
    browser, record = page
    valid = next(all_cases())
    case = Case("bad-k", valid.data, valid.log_keys, valid.witness_keys, None, min_witnesses=4)
    assert drop(browser, case) == "error"
    assert browser.inner_text("#failure-detail") == (
        "--min-witnesses 4 but only 3 --witness-key given"
    )
    assert record.console_errors == []
    assert record.blocked == []
