"""Each view of the dashboard in headless Chromium, on a real ``roadledger api serve`` over the
world of ``world.py``: what the page shows is what the member's roles and grants allow, with
no console error and no request leaving loopback; screenshots in the test's directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from contracts.access import OrgKind, Role
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from tests.integration.api.conftest import PASSWORD
from tests.integration.api.places import CITY, add_telemetry, middle
from tests.integration.dashboard.browser import guarded
from tests.integration.dashboard.conftest import Served
from tests.integration.dashboard.world import GRANTED, ROLLED_BACK

pytestmark = [pytest.mark.postgres, pytest.mark.browser, pytest.mark.slow]

INK = """() => {  // pixels drawn on the map's canvas (the network, the positions)
  const c = document.querySelector('#map canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""


async def _listed_warnings(page: Page) -> set[str]:
    await page.wait_for_selector("#warnings-count:has-text('warnings')")
    ids = await page.eval_on_selector_all(
        "#warnings tbody tr", "rows => rows.map(r => r.dataset.warning)"
    )
    return set(ids)


async def _first_positions(page: Page) -> None:
    await page.wait_for_function("() => document.querySelector('#live')?.dataset.events >= '1'")


async def _live_vehicles(page: Page, count: int) -> None:
    await page.wait_for_function(
        f"() => document.querySelector('#live')?.dataset.vehicles === '{count}'", timeout=15_000
    )


def _drawn(segment_id: int) -> str:
    """A function of the page: the state and colour the map shows for the segment."""
    return (
        "() => { const m = document.querySelector('#map').dataset;"
        f" return m.states && [JSON.parse(m.states)['{segment_id}'],"
        f" JSON.parse(m.colours)['{segment_id}']]; }}"
    )


async def _recoloured_live(served: Served, page: Page) -> None:
    """North avenue (101, no traffic) turns red when three vehicles crawl on it in the store,
    pushed by GET /v1/segments/stream to the same page (no reload)."""
    await page.wait_for_function(f"() => ({_drawn(101)})()?.[0] === 'unknown'")
    assert await page.evaluate(_drawn(101)) == ["unknown", "#8a96a8"]
    await page.evaluate("() => { window.notReloaded = true; }")
    now = int(time.time() * 1000)
    await add_telemetry(served.world.pool, [
        (device, 1, now, middle(CITY), 101, 300)  # 10.8 km/h, limit 50
        for device in ("veh-a1", "veh-a2", "veh-b1")
    ])  # fmt: skip
    await page.wait_for_function(f"() => ({_drawn(101)})()?.[0] === 'jammed'", timeout=15_000)
    assert await page.evaluate(_drawn(101)) == ["jammed", "#d23c2a"]
    assert await page.evaluate("() => window.notReloaded") is True


async def test_the_authority_sees_its_network_warnings_and_no_vehicle(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    async with guarded(browser, served.url, tmp_path) as tab:
        assert await tab.login("police-analyst") == "traffic"
        page = tab.page
        await page.wait_for_selector("#map[data-segments]")
        # Its jurisdiction's roads (7 and 9 of places.py, 100-102 of world.py): not county's 8.
        assert await page.get_attribute("#map", "data-segments") == "5"
        # Its jurisdiction and its district unit's (police-north of places.py).
        assert await page.get_attribute("#map", "data-outlines") == "2"
        assert await page.evaluate(INK) > 500
        await _recoloured_live(served, page)
        # Every warning of the run lies in the city: all four, the congestion one included.
        assert await _listed_warnings(page) == {w.warning_id for w in served.world.warnings}
        # A warning's evidence, proven in the ledger in the browser.
        rollback = next(w for w in served.world.warnings if w.device_id == ROLLED_BACK)
        await page.click(f"#warnings tr[data-warning='{rollback.warning_id}']")
        await page.wait_for_selector("#evidence .proof-ok")
        assert await page.locator("#evidence .proof-ok").count() == 2
        # Filters: the critical ones only.
        await page.select_option("#warning-filters select[name=severity]", "critical")
        await page.click("#warning-filters button")
        await page.wait_for_function(
            "() => document.querySelectorAll('#warnings tbody tr').length === 1"
        )
        # A segment's history and its 15/30/60-minute forecasts.
        await page.select_option("#segment-pick", "100")
        await page.wait_for_selector("#forecasts tbody tr")
        horizons = await page.locator("#forecasts tbody tr td:first-child").all_inner_texts()
        assert horizons == ["15 min", "30 min", "60 min"]
        assert int(await page.get_attribute("#segment-panel .chart", "data-points") or 0) >= 4
        # Positions are raw track data: an authority with no grant sees none.
        await _first_positions(page)  # the stream's first event: every vehicle it may see
        assert await page.get_attribute("#live", "data-vehicles") == "0"
        await tab.shot("authority")


async def test_the_owner_sees_its_vehicles_mileage_grants_and_audit_trail(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    async with guarded(browser, served.url, tmp_path) as tab:
        assert await tab.login("fleet-a-admin") == "fleet"
        page = tab.page
        # Its vehicles: car-a1..a3 of the run and places.py's veh-a1, veh-a2; not fleet-b's.
        await page.wait_for_selector("#vehicle-count")
        assert await page.inner_text("#vehicle-count") == "5 vehicles of fleet-a"
        # The rolled-back car: 5 km back between two readings 139 m apart.
        await page.select_option("#vehicle-pick", ROLLED_BACK)
        await page.wait_for_selector("#mileage-summary:has-text('rolled back 4861 m')")
        assert int(await page.get_attribute("#mileage .chart", "data-points") or 0) >= 1
        # The grant world.py made, then a new one, then revoked.
        grants = page.locator("#grant-list tbody tr")
        await page.wait_for_selector("#grant-list tbody tr")
        assert await grants.count() == 1
        assert "insurer-x" in await grants.first.inner_text()
        await page.select_option("#grant-form select[name=grantee_org]", "fleet-b")
        await page.select_option("#grant-form select[name=device_ids]", ["car-a3"])
        await page.check("#grant-form input[value=mileage]")
        await page.fill("#grant-form input[name=purpose]", "resale check")
        await page.click("#grant-form button[type=submit]")
        await page.wait_for_function(
            "() => document.querySelectorAll('#grant-list tbody tr').length === 2"
        )
        await page.locator("#grant-list tr:has-text('fleet-b') button.revoke").click()
        await page.wait_for_selector("#grant-list tr:has-text('fleet-b') td.status:text('revoked')")
        # The audit trail: the grants given and revoked just now.
        await page.wait_for_selector("#audit-list tbody tr")
        trail = await page.inner_text("#audit-list")
        assert "grant_create" in trail
        await tab.shot("owner")
        # Its own vehicles' live positions: the three that are driving.
        await page.click("#nav a[data-view=traffic]")
        await _live_vehicles(page, 3)
        events = int(await page.get_attribute("#live", "data-events") or 0)
        assert events >= 1
        await tab.shot("owner-traffic")
    revoked = await served.world.pool.fetchval(
        "SELECT count(*) FROM access_grants "
        "WHERE grantee_org = 'fleet-b' AND revoked_at IS NOT NULL"
    )
    assert revoked == 1


async def test_the_insurer_requests_a_certificate_of_its_granted_vehicle(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    async with guarded(browser, served.url, tmp_path) as tab:
        assert await tab.login("insurer-x-agent") == "certificates"
        page = tab.page
        assert GRANTED in await page.inner_text("#received")
        assert await page.locator("#certificate-form option").all_inner_texts() == [GRANTED]
        await page.click("#certificate-form button[type=submit]")
        await page.wait_for_selector("#certificate-summary")
        summary = await page.inner_text("#certificate-summary")
        assert "180 messages" in summary
        assert "no anomaly" in summary
        async with page.expect_download() as download:
            await page.click("#certificate-download")
        saved = tmp_path / "certificate.json"
        await (await download.value).save_as(saved)
        certificate = json.loads(saved.read_text())
        assert (certificate["device_id"], len(certificate["messages"])) == (GRANTED, 180)
        assert await page.get_attribute("#verifier-link", "href") == "/ui/verifier/verify.html"
        await tab.shot("insurer")
        # Of the run, it sees its granted vehicle alone: one live position, its one warning.
        await page.click("#nav a[data-view=traffic]")
        await _live_vehicles(page, 1)
        assert await _listed_warnings(page) == served.world.warning_ids(GRANTED)
        await tab.shot("insurer-traffic")


async def test_the_ledger_shows_logs_checkpoints_cosigners_and_blocks(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    # The telemetry log and the audit log (a ledger log too), listed by origin.
    logs = await served.world.pool.fetch(
        "SELECT log_id, origin, tree_size FROM ledger_logs ORDER BY origin"
    )
    telemetry = next(log for log in logs if not log["origin"].endswith("/audit"))
    size = telemetry["tree_size"]
    async with guarded(browser, served.url, tmp_path) as tab:
        await tab.login("fleet-a-analyst")
        page = tab.page
        await page.click("#nav a[data-view=ledger]")
        await page.wait_for_selector("#cosigners")
        sizes = await page.locator("#logs .tree-size").all_inner_texts()
        assert len(sizes) == len(logs) == 2
        assert sizes[logs.index(telemetry)] == str(size)
        await page.click(f"#logs tr[data-log='{telemetry['log_id']}']")
        await page.wait_for_selector(f"text=Checkpoint of {telemetry['origin']}")
        assert "cosigned by w.t/1" in await page.inner_text("#cosigners")
        assert f"\n{size}\n" in await page.inner_text("#checkpoint")
        assert await page.locator("#blocks tbody tr").count() >= 1
        await tab.shot("ledger")


async def test_a_member_without_a_grant_sees_no_vehicle_data(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    async with served.world.pool.acquire() as conn:
        await create_organisation(conn, "insurer-y", "Insurer Y", OrgKind.INSURER)
        await create_member(conn, "insurer-y", "insurer-y-agent", PASSWORD, (Role.INSURER,))
    async with guarded(browser, served.url, tmp_path) as tab:
        await tab.login("insurer-y-agent")
        page = tab.page
        await page.wait_for_selector("#received")
        assert await page.locator("#received tbody tr").count() == 0
        assert await page.locator("#certificate-form").count() == 0
        await page.click("#nav a[data-view=traffic]")
        assert await _listed_warnings(page) == set()
        await _first_positions(page)  # the stream's first event: every vehicle it may see
        assert await page.get_attribute("#live", "data-vehicles") == "0"
        await tab.shot("no-grant")


SESSION = "() => JSON.parse(sessionStorage.getItem('roadledger.session'))"


async def test_an_expired_or_refused_token_is_refreshed_once_and_the_page_goes_on(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    async with guarded(browser, served.url, tmp_path) as tab:
        await tab.login("fleet-a-analyst")
        page = tab.page
        refreshes: list[int] = []
        page.on(
            "response",
            lambda r: refreshes.append(r.status) if r.url.endswith("/v1/auth/refresh") else None,
        )
        first = await page.evaluate(SESSION)
        # The access token is about to expire (by the page's clock): refreshed before use.
        await page.evaluate(
            "() => { const s = JSON.parse(sessionStorage.getItem('roadledger.session'));"
            " s.expiresAt = Date.now(); sessionStorage.setItem('roadledger.session',"
            " JSON.stringify(s)); }"
        )
        await page.click("#nav a[data-view=ledger]")
        await page.wait_for_selector("#cosigners")
        second = await page.evaluate(SESSION)
        assert refreshes == [200]
        assert second["access"] != first["access"]
        assert second["refresh"] != first["refresh"]
        # The API refuses the access token (401): one refresh, then the same request again.
        await page.evaluate(
            "() => { const s = JSON.parse(sessionStorage.getItem('roadledger.session'));"
            " s.access = 'rla_not_a_token'; sessionStorage.setItem('roadledger.session',"
            " JSON.stringify(s)); }"
        )
        tab.errors_allowed.append("status of 401")  # the refused request, answered as such
        await page.click("#nav a[data-view=fleet]")
        await page.wait_for_selector("#vehicle-count")
        await tab.shot("refreshed")
        assert refreshes == [200, 200]
        assert (await page.evaluate(SESSION))["access"].startswith("rla_")
        # Logging out ends the session at the API: the refresh token no longer works.
        refresh = (await page.evaluate(SESSION))["refresh"]
        await page.click("#logout")
        await page.wait_for_selector("#login:not([hidden])")
        assert await page.evaluate(SESSION) is None
    async with httpx.AsyncClient(base_url=served.url) as client:
        again = await client.post("/v1/auth/refresh", json={"refresh_token": refresh})
        assert again.status_code == 401
