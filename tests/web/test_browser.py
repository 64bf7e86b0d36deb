"""The dashboard in headless Chromium against a real server on 127.0.0.1: the map, a live decline,
what a participant may not see, and a tampered ledger. Every page is saved as a screenshot
(test-artifacts/web/) and no page may request anything off the machine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from tests.web.conftest import Browser, DemoLedger, Server, login, shot, start_server

AMC92 = "demo-amc92-az-2021-02"
CORONAVAC = "demo-coronavac-2021-08"
HOSTILE = '<script>window.__pwned = 1</script><img src="http://example.org/x.png"> doubts about efficacy'


def test_demo_round_renders_on_the_map(demo_server: tuple[Server, DemoLedger], browser: Browser) -> None:
    server, ledger = demo_server
    ctx = browser.context()
    page = ctx.new_page()
    login(page, server.base, ledger.tokens["coordinator"])
    page.goto(f"{server.base}/web/rounds/{AMC92}")
    page.wait_for_selector("#chart-map[data-rendered='1'] svg", state="attached")
    # every participant is in the table; the atlas draws the countries, small states are dots
    assert page.locator("#table-map tbody tr").count() == 92
    shapes = page.locator("#chart-map svg path").count()
    assert shapes > 170  # the 1:110m atlas has 177 countries
    page.wait_for_selector("#chart-map svg path[aria-roledescription='geoshape'][aria-label='Kenya']", state="attached")
    # too small for the atlas: a dot at its centroid
    page.wait_for_selector("#chart-map svg path[aria-roledescription='circle'][aria-label='Tuvalu']", state="attached")
    kenya = page.locator("#table-map tr", has_text="KEN").text_content() or ""
    assert "per 100 people" in kenya
    page.wait_for_selector("#need-table", timeout=60_000)
    assert page.locator("#need-table tbody tr").count() >= 80
    page.click("#verify-button")
    page.wait_for_selector("#verify-result.ok")
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
    print(f"secretariat board, first contentful paint: {paint:.0f} ms")
    shot(page, "secretariat-board-amc92")
    page.locator("#map").screenshot(path=str(shot(page, "map").parent / "map-section.png"))
    phone = browser.context(width=390, height=844).new_page()
    login(phone, server.base, ledger.tokens["observer"])
    phone.goto(f"{server.base}/web/rounds/{AMC92}")
    phone.wait_for_selector("#chart-map[data-rendered='1'] svg", state="attached")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at phone width ({width}px)"
    shot(phone, "secretariat-board-phone")
    assert browser.offsite == []
    ctx.close()


def test_dprk_declines_and_the_board_updates_live(demo_server: tuple[Server, DemoLedger], browser: Browser) -> None:
    server, ledger = demo_server
    board_ctx, prk_ctx = browser.context(), browser.context()
    board = board_ctx.new_page()
    login(board, server.base, ledger.tokens["coordinator"])
    board.goto(f"{server.base}/web/rounds/{CORONAVAC}")
    board.wait_for_selector("body[data-live='on']")
    assert board.inner_text("#status-table tr[data-status='declined'] [data-offers]") == "0"
    board.evaluate("window.__sameDocument = true")

    prk = prk_ctx.new_page()
    login(prk, server.base, ledger.tokens["PRK"])
    assert prk.url.endswith("/web/my")
    offer = prk.locator("article.status-offered", has_text="SINOVAC-DPRK-2021-08")
    offer.locator("summary.decline-open").click()
    offer.get_by_label("Reason").select_option("efficacy_concerns")
    offer.get_by_label("Note (optional)").fill(HOSTILE)
    offer.get_by_label("Wish: where should these doses go? (optional)").fill("severely affected countries")
    shot(prk, "participant-decline-form")
    offer.get_by_role("button", name="Decline this offer").click()
    prk.wait_for_url("**/web/receipts/*")
    receipt_hash = prk.inner_text("#receipt-hash")
    shot(prk, "participant-receipt")
    head = httpx.get(f"{server.base}/ledger/head", headers={"Authorization": f"Bearer {ledger.tokens['observer']}"})
    assert head.json()["hash"] == receipt_hash  # the receipt is the event just recorded

    # the secretariat's board, never reloaded, shows the decline with its reason, note and wish
    board.wait_for_function(
        "document.querySelector(\"#status-table tr[data-status='declined'] [data-offers]\").textContent === '1'",
        timeout=15_000)
    assert board.evaluate("window.__sameDocument") is True
    board.wait_for_function(f"document.querySelector('#ledger-head-full code').textContent === '{receipt_hash}'")
    board.wait_for_function(f"document.querySelector('#ledger-head code').title === '{receipt_hash}'")
    row = board.locator("#declines tr", has_text="PRK")
    assert "efficacy concerns" in row.inner_text() and "severely affected countries" in row.inner_text()
    assert "<script>window.__pwned = 1</script>" in row.inner_text()  # shown as text, not run
    assert board.evaluate("window.__pwned") is None and prk.evaluate("window.__pwned") is None
    shot(board, "secretariat-board-after-decline")
    prk.goto(f"{server.base}/web/my")
    shot(prk, "participant-page")
    assert browser.offsite == []  # the hostile note's image was never fetched either
    board_ctx.close()
    prk_ctx.close()


def test_kenya_never_sees_dprks_offer(demo_server: tuple[Server, DemoLedger], browser: Browser) -> None:
    server, ledger = demo_server
    ctx = browser.context()
    page = ctx.new_page()
    login(page, server.base, ledger.tokens["KEN"])
    assert page.url.endswith("/web/my")
    text = page.inner_text("body")
    html = page.content()
    prk_offer = f"{CORONAVAC}:SINOVAC-DPRK-2021-08:PRK:0"
    assert "KEN" in text and "SII-AZ-2021H1" in text
    assert prk_offer not in html and ":PRK:" not in html and "SINOVAC-DPRK" not in text
    assert "efficacy" not in text and "severely affected" not in text  # DPRK's answer stays DPRK's
    assert page.locator("article[data-offer*='PRK']").count() == 0
    assert page.locator("nav a", has_text=CORONAVAC).count() == 0
    shot(page, "participant-kenya")
    for path in (f"/web/rounds/{CORONAVAC}", f"/web/rounds/{AMC92}", "/web/ledger", "/web/ledger/export"):
        resp = page.goto(f"{server.base}{path}")
        assert resp is not None and resp.status == 403, path
        assert "SINOVAC" not in page.inner_text("body") and ":PRK:" not in page.content()
    # DPRK's receipts and offer are refused as if they did not exist; nothing is recorded
    with sqlite3.connect(ledger.path) as conn:
        seq, offer_id = conn.execute("SELECT seq, offer_id FROM ledger_events WHERE participant = 'PRK' "
                                     "AND type = 'offer.made' ORDER BY seq DESC LIMIT 1").fetchone()
        before = conn.execute("SELECT COUNT(*) FROM ledger_events").fetchone()[0]
    resp = page.goto(f"{server.base}/web/receipts/{seq}")
    assert resp is not None and resp.status == 404 and ":PRK:" not in page.content()
    page.goto(f"{server.base}/web/my")
    status = page.evaluate(
        """async (offer) => {
            const form = new FormData();
            form.append('csrf', document.querySelector("meta[name=csrf-token]").content);
            form.append('reason', 'other');
            const r = await fetch('/web/offers/' + offer + '/decline', {method: 'POST', body: form});
            return [r.status, await r.text()];
        }""", offer_id)
    assert status[0] == 404 and "SINOVAC" not in status[1]
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger_events").fetchone()[0] == before
    assert browser.offsite == []
    ctx.close()


def test_verify_turns_red_on_a_tampered_ledger(demo_ledger: DemoLedger, browser: Browser, tmp_path: Path) -> None:
    ledger = demo_ledger.copy(tmp_path / "tampered.db")
    with sqlite3.connect(ledger.path) as conn:  # someone with write access to the database file
        conn.execute("DROP TRIGGER ledger_events_no_update")
        conn.execute("UPDATE ledger_events SET actor = 'someone-else' WHERE seq = 100")
    server = start_server(ledger)
    try:
        ctx = browser.context()
        page = ctx.new_page()
        login(page, server.base, ledger.tokens["observer"])
        page.goto(f"{server.base}/web/ledger")
        assert page.locator("a[href='/web/ledger/export?format=jsonl']").count() == 1
        assert page.locator("form[action*='advance']").count() == 0  # an observer writes nothing
        page.get_by_role("button", name="Verify the hash chain").click()
        result = page.wait_for_selector("#verify-result.bad")
        assert "FAILED at event 100" in result.inner_text()
        colour = page.evaluate("getComputedStyle(document.querySelector('#verify-result')).backgroundColor")
        assert colour == "rgb(179, 38, 30)"
        shot(page, "observer-ledger-tampered")
        assert browser.offsite == []
        ctx.close()
    finally:
        server.stop()
