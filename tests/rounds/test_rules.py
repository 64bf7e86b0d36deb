"""Every reallocation order (pro rata, need, optimal) obeys the same rules after every event."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dosewise.errors import ConflictError
from dosewise.ledger import open_store
from dosewise.rounds import Rounds, project

from .conftest import SCENARIO
from .rules import check_round_rules

D = dt.date.fromisoformat
NEED = {"KEN": 0.3, "UGA": 0.5, "PRK": 0.9, "BGD": 0.7, "NPL": 0.6, "MNG": 0.95}
ORDERS = {
    "pro-rata": SCENARIO,
    "need": SCENARIO.replace("reallocation: pro-rata", "reallocation: need"),
    "optimal": SCENARIO.replace("policy: {name: covax-pro-rata, buffer: 0.05}",
                                "policy: {name: optimal, buffer: 0.05, weeks: 12}").replace(
        "reallocation: pro-rata", "reallocation: optimal"),
}
ACTIONS = st.lists(st.tuples(st.sampled_from(["accept", "decline", "skip"]), st.integers(0, 30)), min_size=1,
                   max_size=10)
PLANS = st.lists(st.tuples(ACTIONS, st.integers(1, 40)), min_size=1, max_size=4)


def _play(order: str, plan: list[tuple[list[tuple[str, int]], int]]) -> None:
    store = open_store("memory")
    rounds = Rounds(store, need=NEED if order != "pro-rata" else None)
    rid = rounds.open(ORDERS[order])
    day = D("2021-08-30")
    for actions, step in plan:
        state = rounds.state(rid)
        open_offers = [o for o, v in state.offers.items() if v["status"] == "offered"]
        for action, k in actions:
            if not open_offers:
                break
            oid = open_offers.pop(k % len(open_offers))
            if action == "accept":
                rounds.respond(oid, "accept")
            elif action == "decline":
                rounds.respond(oid, "decline", reason="other", note="test")
        day += dt.timedelta(days=step)
        rounds.advance(rid, day)
    final = check_round_rules(store.read(), rid, rounds.world(rid))
    live = rounds.state(rid)
    assert final.lots == live.lots and final.offers == live.offers
    assert store.verify().ok


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=PLANS)
def test_pro_rata_reallocation_obeys_every_rule(plan: list[tuple[list[tuple[str, int]], int]]) -> None:
    _play("pro-rata", plan)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=PLANS)
def test_need_reallocation_obeys_every_rule(plan: list[tuple[list[tuple[str, int]], int]]) -> None:
    _play("need", plan)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=PLANS)
def test_optimal_reallocation_obeys_every_rule(plan: list[tuple[list[tuple[str, int]], int]]) -> None:
    _play("optimal", plan)


def test_advance_to_a_date_already_reached_records_nothing_new() -> None:
    store = open_store("memory")
    rounds = Rounds(store)
    rid = rounds.open(SCENARIO)
    first = next(iter(rounds.state(rid).offers))
    rounds.respond(first, "decline", reason="other")
    made = rounds.advance(rid, D("2021-09-07"))
    assert made
    head = store.head()
    assert rounds.advance(rid, D("2021-09-07")) == []
    assert Rounds(store).advance(rid, D("2021-09-07")) == []  # another process retrying
    assert store.head() == head


def test_idempotency_key_replays_first_answer_whatever_the_date() -> None:
    store = open_store("memory")
    rounds = Rounds(store)
    rid = rounds.open(SCENARIO)
    oid = next(iter(rounds.state(rid).offers))
    first = rounds.respond(oid, "decline", reason="efficacy_concerns", idempotency_key="k")
    rounds.advance(rid, D("2021-10-30"))  # well past the offer's deadline
    again = Rounds(store).respond(oid, "decline", reason="efficacy_concerns", idempotency_key="k")
    assert again.seq == first.seq
    with pytest.raises(ConflictError, match=r"was used for offer\.declined"):
        rounds.respond(oid, "accept", idempotency_key="k")


def test_open_doses_equal_the_sum_of_open_offers_in_replay() -> None:
    """A balance that adds up overall but whose open doses are not backed by offers is reported."""
    store = open_store("memory")
    rounds = Rounds(store)
    rid = rounds.open(SCENARIO)
    state = project(store.read(), rid)
    assert state.problems() == []
    lot = next(iter(state.lots))
    state.lots[lot]["open"] += 2400
    state.lots[lot]["pool"] -= 2400
    assert any("open offers hold" in p for p in state.problems())
