"""Donations with earmarks, bilateral lots, answers in part, opt-out, delay, transfers, readiness,
the humanitarian buffer, shipments and delivery: each an event, every dose accounted for."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.rounds.rules import check_round_rules

from dosewise.errors import ConflictError, InputError, RoundError, ScenarioError
from dosewise.ledger import Store, open_store
from dosewise.rounds import Rounds, RoundState
from dosewise.scenario import Lot, parse_scenario_text
from dosewise.world import build_world, earmark_mask

D = dt.date.fromisoformat

SCENARIO = """
name: mechanism
as_of: 2021-08-30
participants:
  include: [KEN, UGA, PRK, BGD, NPL, MNG]
  overrides:
    MNG: {cold_chain: [2-8C]}
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
  - {id: AZD, product: AZD1222, doses: 1000000, available: 2021-08-30, expiry: 2022-03-31, donor: GBR,
     channel: covax, earmarks: {regions: [Africa]}, pledged: 2021-06-13}
  - {id: SPUT, product: Sputnik V, doses: 1000000, available: 2021-08-30, expiry: 2022-03-31, donor: RUS,
     channel: bilateral, earmarks: {recipients: [PRK]}}
policy: {name: covax-pro-rata, buffer: 0.05}
round: {id: M1, opens: 2021-08-30, response_days: 7, reallocation: pro-rata, readiness: {days: 20}}
"""
CONDITIONS = ("deployment_plan", "indemnity", "import_permit")


def opened(store: Store, text: str = SCENARIO) -> tuple[Rounds, str]:
    r = Rounds(store)
    return r, r.open(parse_scenario_text(text))


def offer_of(r: Rounds, rid: str, code: str, lot: str) -> str:
    return next(o["offer"] for o in r.state(rid).offers.values()
                if o["participant"] == code and o["lot"] == lot and o["status"] == "offered")


def ready(r: Rounds, rid: str, code: str, product: str, on: str = "2021-08-31") -> None:
    for c in CONDITIONS:
        r.record_readiness(rid, code, product, c, D(on))


def seq(store: Store) -> int:
    head = store.head()
    return 0 if head is None else head.seq


def rules(r: Rounds, rid: str) -> None:
    state = check_round_rules(r.store.read(), rid, r.world(rid))
    live = r.state(rid)
    assert state.lots == live.lots and state.offers == live.offers and state.shipments == live.shipments
    assert state.transfers == live.transfers and state.buffer_requests == live.buffer_requests
    snap = RoundState.from_json(live.to_json())  # a snapshot keeps every part of the mechanism
    for name in ("lots", "offers", "shipments", "transfers", "buffer_requests", "readiness", "opted_out",
                 "lot_terms", "last_seq"):
        assert getattr(snap, name) == getattr(live, name), name


# -- donations, earmarks, bilateral lots ---------------------------------------------------------

def test_earmarks_and_the_bilateral_lot_at_opening(store: Store) -> None:
    r, rid = opened(store)
    state = r.state(rid)
    az = {o["participant"] for o in state.offers.values() if o["lot"] == "AZD"}
    assert az == {"KEN", "UGA"}  # the donor earmarked Africa
    sput = [o for o in state.offers.values() if o["lot"] == "SPUT"]
    assert [(o["participant"], o["doses"]) for o in sput] == [("PRK", 1_000_000)]
    assert state.lots["SPUT"]["buffer"] == 0
    assert state.lot_terms["SPUT"] == {"donor": "RUS", "channel": "bilateral", "earmarks": {"recipients": ["PRK"]}}
    # declined bilateral doses stay with the lot: the facility never re-offers them
    r.respond(sput[0]["offer"], "decline", reason="other", on=D("2021-09-01"))
    r.advance(rid, D("2021-09-08"))
    assert all(o["participant"] == "PRK" for o in r.state(rid).offers.values() if o["lot"] == "SPUT")
    assert r.state(rid).lots["SPUT"]["pool"] == 1_000_000
    rules(r, rid)


def test_donation_on_a_running_round(store: Store) -> None:
    r, rid = opened(store)
    r.advance(rid, D("2021-09-08"))
    lot = Lot(id="PF-D", product="BNT162b2", doses=58_500, available=D("2021-09-10"), expiry=D("2022-01-31"),
              donor="USA", channel="covax", earmarks={"recipients": ["BGD", "NPL"]})  # type: ignore[arg-type]
    events = r.donate(rid, lot)
    assert [e.type for e in events] == ["lot.donated"]
    r.advance(rid, D("2021-09-16"))
    got = {o["participant"] for o in r.state(rid).offers.values() if o["lot"] == "PF-D"}
    assert got and got <= {"BGD", "NPL"}
    assert r.state(rid).lot_terms["PF-D"]["donor"] == "USA"
    rules(r, rid)
    # a held allocation covers the donated lot as well
    held = r.state(rid)
    from dosewise.rounds import held_allocation

    alloc = held_allocation(held, r.world(rid), include_open=True)
    assert "PF-D" in list(alloc.lots.index)


def test_donations_that_cannot_be_used_are_refused(store: Store) -> None:
    r, rid = opened(store)
    before = seq(store)
    short = Lot(id="X1", product="AZD1222", doses=1000, available=D("2021-08-30"), expiry=D("2021-10-01"),
                donor="FRA")
    with pytest.raises(RoundError, match="minimum shelf life"):
        r.donate(rid, short)
    cold = Lot(id="X2", product="BNT162b2", doses=1000, available=D("2021-08-30"), expiry=D("2022-06-01"),
               donor="FRA", earmarks={"recipients": ["MNG"]})  # type: ignore[arg-type]
    with pytest.raises(RoundError, match="accepts and can store"):
        r.donate(rid, cold)
    unknown = Lot(id="X3", product="AZD1222", doses=1000, available=D("2021-08-30"), expiry=D("2022-06-01"),
                  donor="FRA", earmarks={"recipients": ["ZZZ"]})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not a participant") as exc:
        r.donate(rid, unknown)
    assert exc.value.field == "donation[0].earmarks.recipients[0]" and exc.value.value == "ZZZ"
    assert seq(store) == before


def test_scenario_earmark_errors() -> None:
    bad = SCENARIO.replace("regions: [Africa]", "regions: [Atlantis]")
    with pytest.raises(ScenarioError, match="unknown region"):
        parse_scenario_text(bad)
    with pytest.raises(ScenarioError, match="not a participant"):
        parse_scenario_text(SCENARIO.replace("recipients: [PRK]", "recipients: [FRA]"))
    with pytest.raises(ScenarioError, match="one recipient"):
        parse_scenario_text(SCENARIO.replace("recipients: [PRK]", "recipients: [PRK, KEN]"))
    late = SCENARIO.replace("expiry: 2022-03-31, donor: GBR", "expiry: 2021-10-15, donor: GBR")
    with pytest.raises(InputError, match="donation refused"):
        Rounds(open_store("memory")).open(parse_scenario_text(late))


# -- answers -------------------------------------------------------------------------------------

def test_partial_acceptance_returns_the_rest_at_once(store: Store) -> None:
    r, rid = opened(store)
    oid = offer_of(r, rid, "BGD", "CV")
    offered = r.state(rid).offers[oid]["doses"]
    pool = r.state(rid).lots["CV"]["pool"]
    ev = r.respond(oid, "accept", doses=1_000_000, on=D("2021-09-01"))
    assert ev.type == "offer.accepted_in_part"
    s = r.state(rid)
    assert s.offers[oid]["doses"] == 1_000_000 and s.offers[oid]["offered"] == offered
    assert s.lots["CV"]["pool"] == pool + offered - 1_000_000
    r.advance(rid, D("2021-09-08"))  # the rest is re-offered, never to BGD
    assert not [o for o in r.state(rid).offers.values() if o["lot"] == "CV" and o["pass"] == 1
                and o["participant"] == "BGD"]
    rules(r, rid)


def test_bad_answers_record_nothing(store: Store) -> None:
    r, rid = opened(store)
    oid = offer_of(r, rid, "KEN", "CV")
    before = seq(store)
    with pytest.raises(InputError, match="more than"):
        r.respond(oid, "accept", doses=10**9)
    with pytest.raises(InputError, match="above zero"):
        r.respond(oid, "accept", doses=0)
    r.respond(oid, "accept")
    after = seq(store)
    with pytest.raises(InputError, match="itself"):
        r.transfer(oid, "KEN", 100)
    with pytest.raises(InputError, match="not a participant"):
        r.transfer(oid, "FRA", 100)
    with pytest.raises(InputError, match="not yet shipped"):
        r.transfer(oid, "UGA", 10**9)
    with pytest.raises(InputError, match="left to ship"):
        r.ship(oid, on=D("2021-09-10"), doses=10**9)
    with pytest.raises(RoundError, match="not ready"):
        r.ship(oid, on=D("2021-09-10"), doses=100)
    with pytest.raises(InputError, match="above zero"):
        r.transfer(oid, "UGA", 0)
    assert seq(store) == after and before < after


def test_transfer_needs_the_receivers_acceptance(store: Store) -> None:
    r, rid = opened(store)
    az = offer_of(r, rid, "KEN", "AZD")
    r.respond(az, "accept", on=D("2021-09-01"))
    with pytest.raises(RoundError, match="earmarked"):
        r.transfer(az, "BGD", 1000)  # the donor earmarked Africa
    t = r.transfer(az, "UGA", 100_000, on=D("2021-09-02"))
    tid = t.payload["transfer"]
    assert r.state(rid).unshipped(az) == r.state(rid).offers[az]["doses"] - 100_000
    r.answer_transfer(rid, tid, True, on=D("2021-09-03"))
    with pytest.raises(RoundError, match="already accepted"):
        r.answer_transfer(rid, tid, False)
    s = r.state(rid)
    assert s.transfers[tid]["status"] == "accepted"
    assert s.offers[tid]["participant"] == "UGA" and s.offers[tid]["doses"] == 100_000
    rules(r, rid)


def test_opt_out_and_delay(store: Store) -> None:
    r, rid = opened(store)
    prk = offer_of(r, rid, "PRK", "CV")
    evs = r.opt_out(rid, "PRK", "CoronaVac", on=D("2021-09-01"), note="interested in other products")
    assert [e.type for e in evs] == ["product.opted_out", "offer.declined"]
    assert r.state(rid).offers[prk]["status"] == "declined"
    with pytest.raises(RoundError, match="already opted out"):
        r.opt_out(rid, "PRK", "CoronaVac")
    ken = offer_of(r, rid, "KEN", "CV")
    r.respond(ken, "accept", on=D("2021-09-01"))
    r.delay(ken, D("2021-10-01"), on=D("2021-09-02"))
    ready(r, rid, "KEN", "CoronaVac")
    with pytest.raises(RoundError, match="no earlier than"):
        r.ship(ken, on=D("2021-09-20"), doses=1000)
    r.ship(ken, on=D("2021-10-01"), doses=1000)
    r.advance(rid, D("2021-09-08"))
    assert not [o for o in r.state(rid).offers.values() if o["participant"] == "PRK" and o["lot"] == "CV"
                and o["pass"] > 0]
    rules(r, rid)


def test_readiness_gates_shipment_and_lapses_late(store: Store) -> None:
    r, rid = opened(store)
    ken, uga = offer_of(r, rid, "KEN", "CV"), offer_of(r, rid, "UGA", "CV")
    r.respond(ken, "accept", on=D("2021-09-01"))
    r.respond(uga, "accept", on=D("2021-09-01"))
    ready(r, rid, "KEN", "CoronaVac", "2021-09-10")
    r.record_readiness(rid, "UGA", "CoronaVac", "deployment_plan", D("2021-09-05"))
    sh = r.ship(ken, on=D("2021-09-12"), doses=50_000, shipment="KEN-CV-1")
    assert sh.type == "shipment.sent"
    r.advance(rid, D("2021-09-30"))  # UGA not ready 20 days after accepting: its doses go back
    s = r.state(rid)
    assert s.offers[uga]["status"] == "lapsed" and "import_permit" in s.offers[uga]["reason"]
    assert s.offers[ken]["status"] == "accepted"
    lapsed = list(store.read(types=["acceptance.lapsed"]))
    assert [e.payload["offer"] for e in lapsed] == [uga]
    r.deliver(rid, "KEN-CV-1", on=D("2021-09-20"))
    s = r.state(rid)
    assert s.shipments["KEN-CV-1"]["shelf_life_days"] == (D("2022-02-28") - D("2021-09-20")).days
    with pytest.raises(RoundError, match="expires"):
        r.expire_unused(rid, "KEN-CV-1", 10, on=D("2021-12-01"))
    r.advance(rid, D("2022-03-01"))
    r.expire_unused(rid, "KEN-CV-1", 2_000, on=D("2022-03-01"))
    report = r.state(rid).delivery_report().set_index(["participant", "product"])
    row = report.loc[("KEN", "CoronaVac")]
    assert (row["shipped"], row["delivered"], row["expired_unused"]) == (50_000, 50_000, 2_000)
    assert row["to_ship"] == s.offers[ken]["doses"] - 50_000
    rules(r, rid)


def test_buffer_requests(store: Store) -> None:
    r, rid = opened(store)
    buf = r.state(rid).lots["CV"]["buffer"]
    r.request_buffer(rid, "CV", "BGD", 100_000, for_whom="Rohingya refugees in Cox's Bazar",
                     why="humanitarian settings outside the national plan", on=D("2021-09-01"), request="HB1")
    r.request_buffer(rid, "CV", "KEN", 10**7, for_whom="refugees", why="camps", request="HB2")
    with pytest.raises(RoundError, match="buffer doses"):
        r.decide_buffer(rid, "HB2", True)
    with pytest.raises(InputError, match="reason"):
        r.decide_buffer(rid, "HB2", False)
    r.decide_buffer(rid, "HB2", False, reason="more than the buffer holds")
    r.decide_buffer(rid, "HB1", True, on=D("2021-09-03"))
    with pytest.raises(RoundError, match="already approved"):
        r.decide_buffer(rid, "HB1", False, reason="again")
    s = r.state(rid)
    assert s.lots["CV"]["buffer"] == buf - 100_000
    assert s.buffer_requests["HB2"]["status"] == "refused"
    held = [o for o in s.offers.values() if o["pass"] == -1]
    assert [(o["participant"], o["doses"], o["status"]) for o in held] == [("BGD", 100_000, "accepted")]
    rules(r, rid)


# -- random sequences of every answer type -----------------------------------------------------

OPS = ("accept", "part", "decline", "opt_out", "delay", "transfer", "answer_transfer", "ready", "advance",
       "ship", "deliver", "expire", "buffer", "decide_buffer", "donate",
       "accept", "part", "ready", "ready", "ship", "ship", "deliver", "answer_transfer", "transfer")
"""Every answer type; those that need others before them drawn more often."""
RUNS = {"sequences": 0, "events": 0}


def _step(r: Rounds, rid: str, op: str, pick: int, amount: int, day: dt.date) -> None:
    s = r.state(rid)
    codes = s.opened["participants"]
    offers = sorted(s.offers)

    def choose(xs: list[Any]) -> Any:
        return xs[pick % len(xs)]

    today = s.today or day
    on = max(today, day)
    if op in ("accept", "part", "decline"):
        open_ = [o for o in offers if s.offers[o]["status"] == "offered"]
        if not open_:
            return
        oid = choose(open_)
        on = min(on, D(s.offers[oid]["deadline"]))
        if op == "accept":
            r.respond(oid, "accept", on=on)
        elif op == "decline":
            r.respond(oid, "decline", reason="other", on=on)
        else:
            r.respond(oid, "accept", on=on, doses=1 + amount % s.offers[oid]["doses"])
    elif op == "opt_out":
        products = sorted({lot["product"] for lot in s.lots.values()})
        r.opt_out(rid, choose(codes), choose(products), on=today)
    elif op == "delay":
        held = [o for o in offers if s.offers[o]["status"] == "accepted"]
        if held:
            r.delay(choose(held), today + dt.timedelta(days=1 + amount % 20), on=today)
    elif op == "transfer":
        held = [o for o in offers if s.unshipped(o) > 0]
        if held:
            oid = choose(held)
            r.transfer(oid, choose(codes), 1 + amount % s.unshipped(oid), on=today)
    elif op == "answer_transfer":
        pending = sorted(t for t, v in s.transfers.items() if v["status"] == "proposed")
        if pending:
            r.answer_transfer(rid, choose(pending), amount % 3 != 0, on=today)
    elif op == "ready":  # the participant of a held offer meets every condition for its product
        held = [o for o in offers if s.unshipped(o) > 0] or offers
        o = s.offers[choose(held)]
        for c in CONDITIONS[:3 if amount % 4 else 2]:  # now and then one missing: it lapses
            r.record_readiness(rid, o["participant"], s.lots[o["lot"]]["product"], c, today)
    elif op == "advance":
        r.advance(rid, today + dt.timedelta(days=1 + amount % 30))
    elif op == "ship":
        held = [o for o in offers if s.unshipped(o) > 0]
        if held:
            oid = choose(held)
            o = s.offers[oid]
            on = max([on, *(D(o[k]) for k in ("answered_on", "ship_after") if o.get(k))])
            r.ship(oid, on=on, doses=1 + amount % s.unshipped(oid))
    elif op == "deliver":
        sent = sorted(k for k, v in s.shipments.items() if v["delivered_on"] is None)
        if sent:
            r.deliver(rid, choose(sent), on=on + dt.timedelta(days=amount % 10))
    elif op == "expire":
        got = sorted(k for k, v in s.shipments.items() if v["delivered_on"] is not None)
        if got:
            sid = choose(got)
            expiry = D(s.lots[s.shipments[sid]["lot"]]["expiry"])
            r.expire_unused(rid, sid, 1 + amount % 1000, on=expiry + dt.timedelta(days=amount % 3))
    elif op == "buffer":
        r.request_buffer(rid, choose(sorted(s.lots)), choose(codes), 1 + amount % 50_000, for_whom="refugees",
                         why="humanitarian settings", on=today)
    elif op == "decide_buffer":
        pending = sorted(k for k, v in s.buffer_requests.items() if v["status"] == "requested")
        if pending:
            r.decide_buffer(rid, choose(pending), amount % 2 == 0, reason=None if amount % 2 == 0 else "no",
                            on=today)
    elif op == "donate":
        n = len(s.lots)
        earmarks = {"recipients": [choose(codes), codes[(pick + 1) % len(codes)]]} if amount % 2 else None
        r.donate(rid, Lot(id=f"D{n}", product="AZD1222", doses=1 + amount, available=today,
                          expiry=today + dt.timedelta(days=200), donor="NOR", earmarks=earmarks))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 10**6),
                                st.integers(0, 40)), min_size=1, max_size=30))
def test_random_sequences_keep_every_dose(steps: list[tuple[str, int, int, int]]) -> None:
    r, rid = opened(open_store("memory"))
    r.snapshot_every = 5
    for op, pick, amount, days in steps:
        last = seq(r.store)
        try:
            _step(r, rid, op, pick, amount, D("2021-08-30") + dt.timedelta(days=days))
        except (InputError, RoundError, ConflictError):
            assert seq(r.store) == last, f"{op} failed but recorded events"
        assert not r.state(rid).problems()
    rules(r, rid)  # replayed after every event: balanced, earmarks obeyed, replay equals live state
    fresh = Rounds(r.store).state(rid)  # from the newest snapshot, then the events after it
    live = r.state(rid)
    for name in ("lots", "offers", "shipments", "transfers", "buffer_requests", "readiness", "opted_out"):
        assert getattr(fresh, name) == getattr(live, name), name
    RUNS["sequences"] += 1
    RUNS["events"] += seq(r.store)


def test_random_sequences_ran() -> None:
    print(f"random sequences: {RUNS}")


# -- earmarks in every policy --------------------------------------------------------------------

POLICIES = {
    "covax-pro-rata": {},
    "covax-need-weighted": {"need": {"KEN": 1.0, "UGA": 2.0, "PRK": 0.5, "BGD": 3.0, "NPL": 1.5, "MNG": 0.7}},
    "optimal": {"weeks": 8, "tiers": 2},
}
AMC = ["KEN", "UGA", "PRK", "BGD", "NPL", "MNG"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipients=st.lists(st.sampled_from(AMC), unique=True, max_size=4),
       exclude=st.lists(st.sampled_from(AMC), unique=True, max_size=2),
       region=st.sampled_from([None, "Africa", "Asia"]),
       income=st.sampled_from([None, "Low", "Lower middle"]),
       policy=st.sampled_from(sorted(POLICIES)))
def test_earmarks_never_violated_in_any_policy(recipients: list[str], exclude: list[str], region: str | None,
                                               income: str | None, policy: str) -> None:
    import yaml

    from dosewise.registry import get_policy

    earmarks: dict[str, Any] = {"recipients": recipients, "exclude": exclude}
    if region:
        earmarks["regions"] = [region]
    if income:
        earmarks["income_levels"] = [income]
    data = yaml.safe_load(SCENARIO)
    data["lots"][1]["earmarks"] = earmarks
    data["lots"] = data["lots"][:2]
    data["policy"] = {"name": policy, "buffer": 0.05, **POLICIES[policy]}
    from dosewise.scenario import parse_scenario

    sc = parse_scenario(data)
    world = build_world(sc)
    alloc = get_policy(policy)(world, sc.policy)
    allowed = earmark_mask(world.participants, sc.lots[1].earmarks)
    assert not np.asarray(alloc.doses)[~allowed, 1].any()
    fixed = {"name": "fixed", "buffer": 0, "amounts": {"AZD": dict.fromkeys(AMC, 1000), "CV": {}}}
    data["policy"] = fixed
    if not allowed.all():
        with pytest.raises(InputError, match="earmarked"):
            get_policy("fixed")(build_world(parse_scenario(data)), parse_scenario(data).policy)


# -- the command line and the demo ---------------------------------------------------------------

def test_cli_answers_shipments_and_report(tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import sqlite3
    from types import SimpleNamespace

    from dosewise.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def dw(*args: str) -> SimpleNamespace:  # in process: the commands as a user runs them, without start-up
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        got = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=got.out, stderr=got.err)

    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    db = str(tmp_path / "l.db")

    def count() -> int:
        return int(sqlite3.connect(db).execute("select count(*) from ledger_events").fetchone()[0])

    assert dw("round", "open", str(scenario), "--db", db).returncode == 0
    r = dw("round", "respond", "M1:CV:BGD:0", "--accept", "--doses", "1000000", "--on", "2021-09-01", "--db", db)
    assert r.returncode == 0 and "offer.accepted_in_part" in r.stdout, r.stderr
    before = count()
    r = dw("round", "transfer", "M1:CV:BGD:0", "--to", "BGD", "--doses", "5", "--db", db)
    assert r.returncode == 2 and "itself" in r.stderr and "Traceback" not in r.stderr
    r = dw("round", "ship", "M1:CV:BGD:0", "--on", "2021-09-05", "--doses", "2000000", "--db", db)
    assert r.returncode == 2 and "left to ship" in r.stderr
    assert count() == before
    for cond in CONDITIONS:
        assert dw("round", "ready", "M1", "BGD", "CoronaVac", cond, "--on", "2021-09-02", "--db", db).returncode == 0
    r = dw("round", "ship", "M1:CV:BGD:0", "--on", "2021-09-05", "--doses", "400000", "--shipment", "BGD-1",
           "--db", db)
    assert r.returncode == 0 and "400,000 doses" in r.stdout, r.stderr
    r = dw("round", "deliver", "M1", "BGD-1", "--on", "2021-09-10", "--db", db)
    assert r.returncode == 0 and "shelf life on arrival: 171 days" in r.stdout, r.stderr
    lot = tmp_path / "lot.yaml"
    lot.write_text("{id: AZ-NOR, product: AZD1222, doses: 500000, available: 2021-09-01, expiry: 2022-03-31, "
                   "donor: NOR, earmarks: {income_levels: [Low]}}\n")
    r = dw("round", "donate", "M1", str(lot), "--db", db)
    assert r.returncode == 0 and "lot.donated" in r.stdout, r.stderr
    lot.write_text("{id: AZ-X, product: AZD1222, doses: 5, available: 2021-09-01, expiry: 2022-03-31, "
                   "donor: NOR, earmarks: {recipients: [XYZ]}}\n")
    r = dw("round", "donate", "M1", str(lot), "--db", db)
    assert r.returncode == 2 and "XYZ" in r.stderr and "not a participant" in r.stderr
    out = tmp_path / "report.csv"
    r = dw("round", "report", "M1", "--out", str(out), "--db", db)
    assert r.returncode == 0, r.stderr
    rows = {(row["participant"], row["product"]): row for row in csv.DictReader(out.open())}
    assert rows[("BGD", "CoronaVac")]["delivered"] == "400000"
    assert rows[("BGD", "CoronaVac")]["to_ship"] == "600000"
    assert dw("ledger", "verify", "--db", db).returncode == 0



def test_hostile_text_and_product_aliases(store: Store) -> None:
    r, rid = opened(store)
    before = seq(store)
    with pytest.raises(InputError, match="at most 20000") as exc:
        r.opt_out(rid, "PRK", "Sputnik V", note="x" * 20_001)
    assert exc.value.field == "note"
    with pytest.raises(InputError, match="no lot of this product"):
        r.opt_out(rid, "PRK", "NoSuchVaccine")
    assert seq(store) == before
    evs = r.opt_out(rid, "PRK", "Sputnik V", note="[red]markup[/] stays text")  # an alias of Gam-COVID-Vac
    assert evs[0].payload["product"] == "Gam-COVID-Vac" and evs[1].type == "offer.declined"
    rules(r, rid)


def test_racing_shipments_ship_each_dose_once(db_url: str) -> None:
    """Four ledger connections ship the same accepted doses at once: one shipment is recorded,
    the others are refused (the round's compare-and-set), and the round still balances."""
    import threading

    store = open_store(db_url)
    r, rid = opened(store)
    oid = offer_of(r, rid, "KEN", "CV")
    r.respond(oid, "accept", on=D("2021-09-01"))
    ready(r, rid, "KEN", "CoronaVac")
    doses = r.state(rid).offers[oid]["doses"]
    results: list[str] = []
    barrier = threading.Barrier(4)

    def ship(k: int) -> None:
        own = open_store(db_url)
        try:
            rounds = Rounds(own)
            rounds.state(rid)
            barrier.wait()
            rounds.ship(oid, on=D("2021-09-05"), doses=doses, shipment=f"S{k}")
            results.append("shipped")
        except (InputError, RoundError, ConflictError) as exc:
            results.append(type(exc).__name__)
        finally:
            own.close()

    threads = [threading.Thread(target=ship, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("shipped") == 1, results
    state = Rounds(store).state(rid)
    assert sum(s["doses"] for s in state.shipments.values()) == doses
    rules(r, rid)
    store.close()
