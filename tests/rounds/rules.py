"""The rules every reallocation order must obey, checked after every single event of a round."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from dosewise.ledger import Event
from dosewise.rounds import RoundState
from dosewise.world import World, earmark_mask

D = dt.date.fromisoformat


def check_round_rules(events: Iterable[Event], round_id: str, world: World) -> RoundState:
    """Replay ``events``; after each one the round must balance, and every offer made must be one a
    participant can use: a product it accepts, a lot it never declined or let lapse, made before the
    lot expires, with an answer deadline that leaves the minimum shelf life on arrival; every offer,
    transfer and buffer approval within the lot's earmarks, bilateral lots never re-offered; no
    offer shipped beyond what it holds."""
    state = RoundState(round_id)
    codes = {str(c): i for i, c in enumerate(world.codes)}
    parts = world.participants
    refused: set[tuple[str, str]] = set()
    terms: dict[str, dict[str, object]] = {}
    for ev in events:
        if ev.round_id != round_id:
            continue
        if ev.type in ("lot.added", "lot.donated"):
            terms[ev.payload["lot"]] = ev.payload
        receiver = _receiver(ev, state)
        if receiver is not None:  # every dose that reaches a participant obeys the donor's earmarks
            lot_id, code = receiver
            allowed = earmark_mask(world.participants, terms[lot_id].get("earmarks"))  # type: ignore[arg-type]
            assert allowed[codes[code]], f"event {ev.seq} {ev.type}: {code} is outside lot {lot_id}'s earmarks"
            if terms[lot_id].get("channel") == "bilateral":
                assert ev.type == "offer.made" and ev.payload["pass"] == 0, (
                    f"event {ev.seq}: bilateral lot {lot_id} moved by the facility")
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
        if ev.type in ("offer.declined", "offer.lapsed", "offer.accepted_in_part", "acceptance.lapsed"):
            o = state.offers[ev.payload["offer"]]
            refused.add((o["lot"], o["participant"]))
        if ev.type == "product.opted_out":
            for lot_id, lot in state.lots.items():
                if lot["product"] == ev.payload["product"]:
                    refused.add((lot_id, ev.payload["participant"]))
        for sh in state.shipments.values():  # never more shipped than held, nor expired than delivered
            assert sh["expired"] <= sh["doses"]
        for oid, o in state.offers.items():
            assert int(o.get("shipped", 0)) + int(o.get("reserved", 0)) <= int(o["doses"]), f"{oid} over-shipped"
            assert int(o.get("delivered", 0)) <= int(o.get("shipped", 0)) or o.get("whole_shipped"), oid
        problems = state.problems()
        assert not problems, f"after event {ev.seq} {ev.type}: {problems}"
    return state


def _receiver(ev: Event, state: RoundState) -> tuple[str, str] | None:
    """(lot, participant) when the event gives doses of a lot to a participant."""
    p = ev.payload
    if ev.type == "offer.made":
        return p["lot"], p["participant"]
    if ev.type == "transfer.accepted":
        t = state.transfers[p["transfer"]]
        return state.offers[t["offer"]]["lot"], t["to"]
    if ev.type == "buffer.approved":
        r = state.buffer_requests[p["request"]]
        return r["lot"], r["participant"]
    return None
