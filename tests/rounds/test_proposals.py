"""Two-person rule in the round layer: a proposal records the offers it would make; only
another identity's approval records them."""

from __future__ import annotations

import datetime as dt

import pytest

from dosewise.errors import ConflictError, ForbiddenError, IntegrityError, RoundError
from dosewise.ledger import NewEvent, Store
from dosewise.rounds import Rounds, project

from .conftest import SCENARIO


def test_proposal_records_offers_only_on_approval(store: Store) -> None:
    rounds = Rounds(store, actor="coordinator:carla:k1")
    rid = rounds.propose(SCENARIO, identity="carla")
    state = rounds.state(rid)
    assert state.phase == "proposed" and not state.offers and not state.lots
    assert rounds.rounds() == [rid]
    proposed = [e for e in state.proposal["events"] if e["type"] == "offer.made"]  # type: ignore[index]
    assert proposed
    head = store.head()
    with pytest.raises(ForbiddenError, match="two-person rule"):
        rounds.approve(rid, identity="carla", actor="reviewer:carla:k2")
    assert store.head() == head
    with pytest.raises(RoundError, match="awaits a reviewer's approval"):
        rounds.advance(rid, dt.date(2021, 9, 10))
    with pytest.raises(ConflictError, match="proposed"):
        rounds.open(SCENARIO)
    events = rounds.approve(rid, identity="rita", actor="reviewer:rita:k3")
    assert events[0].type == "round.approved" and events[0].payload["approved_by"] == "rita"
    assert all(e.actor == "reviewer:rita:k3" for e in events)
    state = rounds.state(rid)
    assert state.phase == "open" and state.balance_ok()
    # the approved offers are exactly the proposed ones
    assert sorted((o["offer"], o["doses"]) for o in state.offers.values()) == sorted(
        (e["payload"]["offer"], e["payload"]["doses"]) for e in proposed)
    # and the same as a direct opening of the same scenario would make
    other = Rounds(open_memory())
    direct = other.state(other.open(SCENARIO))
    assert {o["doses"] for o in direct.offers.values()} == {o["doses"] for o in state.offers.values()}
    with pytest.raises(ConflictError):
        rounds.approve(rid, identity="rosa", actor="reviewer:rosa:k4")
    assert project(store.read(), rid).approval == state.approval


def open_memory() -> Store:
    from dosewise.ledger import open_store

    return open_store("memory")


def test_proposing_again_records_nothing_and_keys_replay() -> None:
    store = open_memory()
    rounds = Rounds(store)
    rid = rounds.propose(SCENARIO, identity="carla", idempotency_key="k")
    head = store.head()
    assert rounds.propose(SCENARIO, identity="carla", idempotency_key="k") == rid
    assert rounds.propose(SCENARIO, identity="carla") == rid
    assert store.head() == head
    with pytest.raises(ConflictError, match="another scenario"):
        rounds.propose(SCENARIO.replace("2970000", "2970001"), identity="carla")
    first = rounds.approve(rid, identity="rita", idempotency_key="a")
    assert rounds.approve(rid, identity="rita", idempotency_key="a") == first[:1]


def test_approval_by_the_proposer_in_a_tampered_ledger_is_an_integrity_failure() -> None:
    store = open_memory()
    rounds = Rounds(store)
    rid = rounds.propose(SCENARIO, identity="carla")
    proposal = rounds.state(rid).proposal
    assert proposal is not None
    store.append([NewEvent(type="round.approved", actor="x", round_id=rid, payload={
        "proposal_seq": proposal["seq"], "proposal_hash": proposal["hash"], "proposed_by": "carla",
        "approved_by": "carla"})])
    with pytest.raises(IntegrityError, match="approved by its proposer"):
        project(store.read(), rid)
