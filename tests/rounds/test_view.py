"""A view of a round (the copy readers get while other threads write) holds the whole state."""

from __future__ import annotations

import datetime as dt

from dosewise.ledger import open_store
from dosewise.rounds import Rounds
from dosewise.scenario import parse_scenario_text

from .conftest import SCENARIO


def test_view_keeps_shipments_transfers_and_opt_outs() -> None:
    rounds = Rounds(open_store("memory"))
    rid = rounds.open(parse_scenario_text(SCENARIO))
    state = rounds.state(rid)
    held = f"{rid}:CV:KEN:0"
    rounds.respond(held, "accept")
    rounds.send(held, 1000, on=dt.date(2021, 8, 31))
    rounds.transfer(held, "UGA", 500, on=dt.date(2021, 8, 31))
    rounds.opt_out(rid, "BGD", "BNT162b2", on=dt.date(2021, 8, 31))
    state = rounds.state(rid)
    assert state.shipments and state.transfers and state.opted_out
    view = rounds.view(rid)
    assert view == state
    view.shipments.clear()
    view.opted_out["BGD"].add("CoronaVac")
    assert rounds.state(rid).shipments and rounds.state(rid).opted_out["BGD"] == {"BNT162b2"}
