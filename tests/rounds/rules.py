"""The rules every reallocation order must obey, checked after every single event of a round."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from dosewise.ledger import Event
from dosewise.rounds import RoundState
from dosewise.world import World

D = dt.date.fromisoformat


def check_round_rules(events: Iterable[Event], round_id: str, world: World) -> RoundState:
    """Replay ``events``; after each one the round must balance, and every offer made must be one a
    participant can use: a product it accepts, a lot it never declined or let lapse, made before the
    lot expires, with an answer deadline that leaves the minimum shelf life on arrival."""
    state = RoundState(round_id)
    codes = {str(c): i for i, c in enumerate(world.codes)}
    parts = world.participants
    refused: set[tuple[str, str]] = set()
    for ev in events:
        if ev.round_id != round_id:
            continue
        if ev.type == "offer.made":
            p = ev.payload
            assert p["offer"] not in state.offers, f"offer id {p['offer']} made twice"
            lot = state.lots[p["lot"]]
            expiry = D(lot["expiry"])
            deadline = D(p["deadline"])
            i = codes[p["participant"]]
            k = world.product_index(lot["product"])
            assert world.accepts[i, k], f"{p['offer']}: {p['participant']} does not accept {lot['product']}"
            assert (p["lot"], p["participant"]) not in refused, f"{p['offer']}: re-offer after decline or lapse"
            if p["pass"] > 0:
                assert state.today is not None and state.today < expiry, f"{p['offer']}: offered on or after expiry"
                room = (expiry - deadline).days - int(parts["lead_time_days"].iloc[i])
                assert room >= int(parts["min_shelf_life_days"].iloc[i]), (
                    f"{p['offer']}: deadline {deadline} leaves {room} days of shelf life on arrival")
            assert deadline <= expiry, f"{p['offer']}: deadline after expiry"
        state.apply(ev)
        if ev.type in ("offer.declined", "offer.lapsed"):
            o = state.offers[ev.payload["offer"]]
            refused.add((o["lot"], o["participant"]))
        problems = state.problems()
        assert not problems, f"after event {ev.seq} {ev.type}: {problems}"
    return state
