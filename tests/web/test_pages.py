"""The dashboard in process: log in, roles, forms, escaping, and the figures the pages show."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dosewise import app as api
from dosewise.service.app import create_app
from dosewise.service.settings import Settings
from dosewise.web import views
from dosewise.web.geo import place

SCENARIO = """
name: dashboard test round
as_of: 2021-08-30
participants:
  include: [KEN, UGA, PRK, BGD, NPL, MNG]
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2021-10-15, source: "Donor <b>A</b>"}
  - {id: PF, product: BNT162b2, doses: 117000, available: 2021-08-30, expiry: 2022-06-30}
policy: {name: covax-pro-rata, buffer: 0.05}
round: {id: R1, opens: 2021-08-30, response_days: 7, reallocation: pro-rata}
"""
HOSTILE = '<script>alert("x")</script>&amp; "quoted"'


class Site:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens: dict[str, str] = {}
        with api.Desk.open(str(path), create=True, actor="test") as desk:
            desk.open_round(api.load_text(SCENARIO))
            for label, role, name, participant in (("coordinator", "coordinator", "carla", None),
                                                   ("observer", "observer", "olga", None),
                                                   ("donor", "donor", "dora", None),
                                                   ("PRK", "participant", None, "PRK"),
                                                   ("KEN", "participant", None, "KEN")):
                self.tokens[label] = desk.create_key(role, name=name, participant=participant)[1]
        self.app = create_app(Settings(db=str(path)))  # type: ignore[call-arg]

    def client(self, label: str | None = None) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        if label is not None:
            resp = client.post("/web/login", data={"key": self.tokens[label]})
            assert resp.status_code == 303, resp.text
        return client

    def count(self) -> int:
        desk: api.Desk = self.app.state.desk
        head = desk.head()
        return 0 if head is None else head.seq


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "ledger.db")
    with TestClient(s.app):
        yield s


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert m is not None
    return m.group(1)


def test_login_sets_a_strict_httponly_cookie_and_never_puts_the_key_in_a_url(site: Site) -> None:
    client = site.client()
    resp = client.post("/web/login", data={"key": site.tokens["observer"]})
    assert resp.status_code == 303 and site.tokens["observer"] not in resp.headers["location"]
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and site.tokens["observer"] not in cookie
    assert client.post("/web/login", data={"key": "dw_000000000000_" + "x" * 30}).status_code == 401
    assert client.get("/web/rounds/R1").status_code == 200
    anonymous = site.client()
    assert anonymous.get("/web/rounds/R1").headers["location"] == "/web/login"
    assert anonymous.get("/web/rounds/R1", headers={"Cookie": "dw_session=forged.1.2.3"}).status_code == 303


def test_each_role_sees_what_it_may(site: Site) -> None:
    for label in ("coordinator", "observer", "donor"):
        client = site.client(label)
        for path in ("/web/", "/web/rounds/R1", "/web/rounds/R1/live", "/web/ledger", "/web/ledger/export"):
            assert client.get(path).status_code == 200, (label, path)
        assert client.get("/web/my").status_code == 403
    board = site.client("observer").get("/web/rounds/R1").text
    assert "Advance the round" not in board  # observers write nothing
    assert "Advance the round" in site.client("coordinator").get("/web/rounds/R1").text
    ken = site.client("KEN")
    assert ken.get("/web/").headers["location"] == "/web/my"
    page = ken.get("/web/my").text
    assert "R1:CV:KEN:0" in page and ":PRK:" not in page
    for path in ("/web/rounds/R1", "/web/rounds/R1/live", "/web/rounds/R1/need", "/web/ledger",
                 "/web/ledger/export"):
        resp = ken.get(path)
        assert resp.status_code == 403 and ":PRK:" not in resp.text, path


def test_a_participant_answers_only_its_own_offers_with_a_token(site: Site) -> None:
    ken, prk = site.client("KEN"), site.client("PRK")
    token = _csrf(ken.get("/web/my").text)
    before = site.count()
    # another participant's offer: refused like an unknown one, nothing recorded
    resp = ken.post("/web/offers/R1:CV:PRK:0/decline", data={"csrf": token, "reason": "other"})
    assert resp.status_code == 404 and site.count() == before
    # no token (a form from another site): refused, nothing recorded
    resp = prk.post("/web/offers/R1:CV:PRK:0/decline", data={"reason": "other"})
    assert resp.status_code == 403 and site.count() == before
    token = _csrf(prk.get("/web/my").text)
    form = {"csrf": token, "nonce": "n1", "reason": "efficacy_concerns", "note": HOSTILE, "wish": "severely affected"}
    first = prk.post("/web/offers/R1:CV:PRK:0/decline", data=form)
    again = prk.post("/web/offers/R1:CV:PRK:0/decline", data=form)  # a double submit records once
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert site.count() == before + 1
    receipt = prk.get(first.headers["location"]).text
    desk: api.Desk = site.app.state.desk
    head = desk.head()
    assert head is not None and head.hash in receipt and head.actor.startswith("participant:PRK:")
    assert ken.get(first.headers["location"]).status_code == 404  # Kenya cannot read DPRK's receipt
    board = site.client("observer").get("/web/rounds/R1/live").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;" in board and "<script>alert" not in board
    # a bad reason is refused with the rules' words, nothing recorded
    resp = ken.post("/web/offers/R1:CV:KEN:0/decline", data={"csrf": _csrf(ken.get("/web/my").text),
                                                             "reason": "because"})
    assert resp.status_code == 422 and "decline reason must be one of" in resp.text
    assert site.count() == before + 1


def test_the_flow_of_declined_doses_balances(site: Site) -> None:
    prk = site.client("PRK")
    prk.post("/web/offers/R1:CV:PRK:0/decline", data={"csrf": _csrf(prk.get("/web/my").text), "reason": "other"})
    coordinator = site.client("coordinator")
    resp = coordinator.post("/web/rounds/R1/advance", data={"csrf": _csrf(coordinator.get("/web/rounds/R1").text),
                                                            "to": "2021-09-07", "nonce": "a1"})
    assert resp.status_code == 303
    desk: api.Desk = site.app.state.desk
    state = desk.view("R1")
    flows = views.flows(desk, state)
    assert flows, "the declined doses were re-offered in pass 1"
    for flow in flows:  # each side of a pass carries the whole pool: nothing lost, nothing made up
        assert sum(s["doses"] for s in flow.sources) == sum(t["doses"] for t in flow.targets) == flow.total
        assert flow.pool == sum(s["doses"] for s in flow.sources if s["status"] != "expired")
    cv = next(f for f in flows if f.lot == "CV")
    assert any(s["code"] == "PRK" and s["status"] == "declined" for s in cv.sources)
    assert "PRK" not in {t["code"] for t in cv.targets}  # never re-offered to who declined
    live = coordinator.get("/web/rounds/R1/live").text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in live and "North Korea (declined)" in live
    # the donor's name is text from another party: escaped in the supply table
    board = coordinator.get("/web/rounds/R1").text
    assert "Donor &lt;b&gt;A&lt;/b&gt;" in board
    assert state.today == dt.date(2021, 9, 7)


def test_doses_at_risk_of_expiry(site: Site) -> None:
    desk: api.Desk = site.app.state.desk
    expiry = {r["lot"]: r for r in views.expiry_rows(desk.view("R1"))}
    assert expiry["CV"]["days_left"] == 46 and expiry["CV"]["at_risk"]  # within 60 days, all undelivered
    assert expiry["PF"]["days_left"] == 304 and not expiry["PF"]["at_risk"]
    assert expiry["CV"]["undelivered"] == expiry["CV"]["open"] + expiry["CV"]["pool"]


def test_every_amc92_participant_has_a_place_on_the_map() -> None:
    members = api.participants_for_group("AMC92")
    places = {str(code): place(str(code)) for code in members.index}
    assert len(places) == 92
    unplaced = [c for c, p in places.items() if not p.drawn and p.lon is None]
    assert unplaced == []
    dots = {c for c, p in places.items() if not p.drawn}
    assert {"TUV", "DMA", "MDV"} <= dots and "KEN" not in dots
    assert all(-180 <= p.lon <= 180 for p in places.values() if p.lon is not None)


def test_a_participant_accepts_part_of_an_offer_and_the_rest_returns_to_the_pool(site: Site) -> None:
    ken = site.client("KEN")
    page_html = ken.get("/web/my").text
    assert "Accept part" in page_html
    desk: api.Desk = site.app.state.desk
    offered = desk.offer("R1:CV:KEN:0")["doses"]
    pool_before = desk.round("R1").lots["CV"]["pool"]
    resp = ken.post("/web/offers/R1:CV:KEN:0/accept", data={"csrf": _csrf(page_html), "nonce": "p1", "doses": "2400"})
    assert resp.status_code == 303, resp.text[:500]
    state = desk.round("R1")
    assert state.lots["CV"]["pool"] == pool_before + offered - 2400
    assert state.problems() == []
    # more than offered is refused, nothing recorded
    before = site.count()
    resp = ken.post("/web/offers/R1:CV:KEN:0/accept", data={"csrf": _csrf(ken.get("/web/my").text), "doses": "0"})
    assert resp.status_code in (409, 422) and site.count() == before
