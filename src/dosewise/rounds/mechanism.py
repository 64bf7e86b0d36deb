"""The rest of a round's mechanism, as commands on :class:`~dosewise.rounds.Rounds`: donations
with earmarks, answers in part, opting out of a product, delayed receipt, transfers between
participants, readiness for shipment, humanitarian-buffer requests, and shipments with
quantities, delivery and doses expired unused.

Every command checks its input against the round's state and records nothing when it is bad
(one :class:`~dosewise.errors.InputError` or :class:`~dosewise.errors.RoundError` naming the
field and value). Commands that move doses are appended with the round's compare-and-set
(:meth:`Rounds._append_for_round`), so two processes can never both ship, transfer or approve
the same doses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dosewise.errors import ConflictError, ForbiddenError, InputError, RoundError
from dosewise.ledger import Event, NewEvent, Store
from dosewise.rounds.events import (
    AcceptanceLapsed,
    BufferDecided,
    BufferRequested,
    LotDonated,
    OfferAcceptedInPart,
    OfferDelayed,
    ProductOptedOut,
    ReadinessRecorded,
    ShipmentDelivered,
    ShipmentExpired,
    ShipmentSent,
    TransferAnswered,
    TransferProposed,
    new_event,
)
from dosewise.rounds.state import HOLDING, RoundState, buffer_offer_id

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from dosewise.scenario import Lot, Scenario
    from dosewise.world import World

    BoolArray = npt.NDArray[np.bool_]

__all__ = ["Mechanism", "bilateral_offer", "donation_refusal", "extend_world", "lot_allowed", "readiness_lapses",
           "terms_of"]

# numpy and pandas are imported inside the functions that use them: answering an offer needs neither.


def _d(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def donation_refusal(world: World, allowed: BoolArray, product: str, available: dt.date, expiry: dt.date,
                     start: dt.date, response_days: int) -> str | None:
    """Why no participant can use a donated lot in time (None when some earmarked participant
    that accepts and can store the product would receive it with its minimum shelf life)."""
    import numpy as np

    if not allowed.any():
        return "its earmarks leave no participant of the round"
    k = world.product_index(product)
    able = allowed & world.accepts[:, k] & world.storage_ok[:, k]
    if not able.any():
        return f"no earmarked participant accepts and can store {product}"
    parts = world.participants
    deadline = max(world.days(start), world.days(available)) + response_days  # days on the world's axis
    shelf = world.days(expiry) - deadline - parts["lead_time_days"].to_numpy(dtype=np.int64)
    if not (able & (shelf >= parts["min_shelf_life_days"].to_numpy())).any():
        best = int(shelf[able].max())
        return (f"no earmarked participant can receive it with its minimum shelf life: it expires {expiry}, "
                f"answers are due {world.date(deadline)}, leaving at most {best} days on arrival")
    return None


def extend_world(world: World, state: RoundState) -> World:
    """The round's world with the lots donated while it ran appended (product, doses, dates,
    earmarks), so allocations and passes see them like the scenario's own lots."""
    import numpy as np
    import pandas as pd

    from dosewise.world import earmark_mask

    new = [lot_id for lot_id in state.lots if lot_id not in world.lots.index]
    if not new:
        return world
    # the ledger's ISO dates enter the world here: as dates, and as days on its time axis
    rows = [{"lot": lot_id, "product": state.lots[lot_id]["product"], "doses": int(state.lots[lot_id]["supply"]),
             "available": pd.Timestamp(state.lots[lot_id]["available"]),
             "expiry": pd.Timestamp(state.lots[lot_id]["expiry"]),
             "source": f"donated by {state.lot_terms.get(lot_id, {}).get('donor', '?')}",
             "available_day": world.days(state.lots[lot_id]["available"]),
             "expiry_day": world.days(state.lots[lot_id]["expiry"])} for lot_id in new]
    lots = pd.concat([world.lots, pd.DataFrame(rows).set_index("lot")])
    base = world.earmarked if world.earmarked is not None else np.ones((world.n, len(world.lots)), dtype=np.bool_)
    extra = np.column_stack([earmark_mask(world.participants, state.lot_terms.get(lot_id, {}).get("earmarks"))
                             for lot_id in new])
    bil_base = world.bilateral if world.bilateral is not None else np.zeros(len(world.lots), dtype=np.bool_)
    bil = np.array([state.lot_terms.get(lot_id, {}).get("channel") == "bilateral" for lot_id in new], dtype=np.bool_)
    return dataclasses.replace(world, lots=lots, earmarked=np.hstack([base, extra]),
                               bilateral=np.concatenate([bil_base, bil]))


def lot_allowed(world: World, lot_id: str) -> tuple[BoolArray | None, bool]:
    """Who may receive ``lot_id`` under its earmarks, and whether it is a bilateral lot."""
    j = world.lots.index.get_loc(lot_id)
    assert isinstance(j, int)
    allowed = None if world.earmarked is None else world.earmarked[:, j]
    return allowed, bool(world.bilateral is not None and world.bilateral[j])


def readiness_lapses(state: RoundState, sc: Scenario, to: dt.date, actor: str) -> list[NewEvent]:
    """``acceptance.lapsed`` for each accepted offer whose participant was not ready for shipment
    by the readiness deadline (``days`` after accepting) and that deadline is before ``to``."""
    rule = sc.round.readiness
    if rule is None:
        return []
    events: list[NewEvent] = []
    for oid, o in state.offers.items():
        if o["status"] not in HOLDING or o.get("answered_on") is None:
            continue
        left = state.unshipped(oid)
        if left <= 0:
            continue
        due = _d(o["answered_on"]) + dt.timedelta(days=rule.days)
        if due >= to:
            continue
        missing = state.ready(o["participant"], state.lots[o["lot"]]["product"], rule.conditions, due)
        if not missing:
            continue
        events.append(new_event("acceptance.lapsed", AcceptanceLapsed(
            offer=oid, on=to, doses=left, reason=f"not ready for shipment by {due}: missing {', '.join(missing)}"),
            actor=actor, round_id=state.round_id, offer_id=oid, lot_id=o["lot"], participant=o["participant"]))
    return events


class Mechanism:
    """Commands for donations, answers in part, transfers, readiness, the buffer and shipments;
    mixed into :class:`~dosewise.rounds.Rounds`."""

    store: Store
    actor: str

    if TYPE_CHECKING:
        def state(self, round_id: str) -> RoundState: ...
        def scenario_world(self, round_id: str) -> tuple[Scenario, World]: ...
        def _offer(self, offer_id: str) -> tuple[RoundState, dict[str, Any]]: ...
        def _append_for_round(self, round_id: str,
                              build: Callable[[RoundState], list[NewEvent]]) -> list[Event]: ...

    # -- helpers ---------------------------------------------------------------------------------
    def _one(self, round_id: str, build: Callable[[RoundState], NewEvent], key: str | None = None) -> Event:
        return self._batch(round_id, lambda state: [build(state)], key)[0]

    def _batch(self, round_id: str, build: Callable[[RoundState], list[NewEvent]],
               key: str | None = None) -> list[Event]:
        """Append what ``build`` makes of the round's state (compare-and-set); a payload that does
        not fit its schema (text too long, a bad id) is an input error naming the field. With an
        idempotency ``key`` (carried by the batch's first event), a retry returns that first event
        as recorded, whatever the round's state is by then."""
        from dataclasses import replace

        from pydantic import ValidationError

        if key is not None:
            stored = self._keyed(round_id, key)
            if stored is not None:
                return [stored]

        def checked(state: RoundState) -> list[NewEvent]:
            try:
                events = build(state)
            except ValidationError as exc:
                first = exc.errors()[0]
                value = first.get("input")
                raise InputError(first["msg"], field=".".join(str(x) for x in first["loc"]),
                                 value=value if isinstance(value, str | int) and len(str(value)) <= 80 else None,
                                 ) from None
            if key is not None and events:
                events[0] = replace(events[0], idempotency_key=key)
            return events

        try:
            return self._append_for_round(round_id, checked)
        except (ConflictError, RoundError):
            stored = self._keyed(round_id, key) if key is not None else None
            if stored is not None:  # a concurrent retry recorded it first
                return [stored]
            raise

    def _keyed(self, round_id: str, key: str) -> Event | None:
        """The event of the round recorded under idempotency ``key``, if any."""
        return next((ev for ev in self.store.read(round_id=round_id) if ev.idempotency_key == key), None)

    def _product(self, state: RoundState, product: str) -> str:
        """The catalogue id of ``product`` (an alias such as "Sputnik V" is accepted) if a lot of
        the round has it."""
        from dosewise.products import catalogue, resolve_product

        sc, _ = self.scenario_world(state.round_id)
        pid = resolve_product(product, catalogue(sc.products)) if isinstance(product, str) else None
        products = {lot["product"] for lot in state.lots.values()}
        if pid not in products:
            raise InputError(f"no lot of this product in the round; products: {', '.join(sorted(products))}",
                             field="product", value=product)
        assert pid is not None
        return pid

    @staticmethod
    def _day(state: RoundState, on: dt.date | None, field: str = "on") -> dt.date:
        from dosewise.rounds.events import LATEST_DATE

        day = on or state.today or _d(state.opened["opens"])
        if day > LATEST_DATE:
            raise InputError(f"dates after {LATEST_DATE} are not accepted", field=field, value=day.isoformat())
        if day < _d(state.opened["opens"]):
            raise RoundError(f"{field} {day} is before the round opened on {state.opened['opens']}")
        return day

    def _round_of(self, offer_id: str) -> str:
        return self._offer(offer_id)[0].round_id

    @staticmethod
    def _participant(state: RoundState, code: str, field: str) -> str:
        up = code.strip().upper() if isinstance(code, str) else code
        if up not in state.opened["participants"]:
            raise InputError("not a participant of the round", field=field, value=code)
        return str(up)

    # -- answers -----------------------------------------------------------------------------------
    def accept_part(self, offer_id: str, doses: int, *, on: dt.date | None = None, note: str | None = None,
                    actor: str | None = None, idempotency_key: str | None = None) -> Event:
        """Accept ``doses`` of an open offer; the rest goes back to the pool at once (and the
        participant is not offered this lot again)."""

        def build(state: RoundState) -> NewEvent:
            o = state.offers[offer_id]
            if isinstance(doses, bool) or not isinstance(doses, int) or doses <= 0:
                raise InputError("doses must be a whole number above zero", field="doses", value=doses)
            if doses > o["doses"]:
                raise InputError(f"cannot accept more than the {o['doses']:,} doses offered", field="doses",
                                 value=doses)
            if o["status"] != "offered":
                raise RoundError(f"offer {offer_id} is already {o['status']}")
            day = self._day(state, on)
            if day > _d(o["deadline"]):
                raise RoundError(f"offer {offer_id}: response on {day} is after the deadline {o['deadline']}")
            if doses == o["doses"]:
                from dosewise.rounds.events import OfferAnswered

                return new_event("offer.accepted", OfferAnswered(offer=offer_id, on=day, note=note),
                                 actor=actor or o["participant"], round_id=state.round_id, offer_id=offer_id,
                                 lot_id=o["lot"], participant=o["participant"],
                                 unique_slot=f"offer:{offer_id}:response")
            return new_event("offer.accepted_in_part", OfferAcceptedInPart(offer=offer_id, on=day, doses=doses,
                                                                           note=note),
                             actor=actor or o["participant"], round_id=state.round_id, offer_id=offer_id,
                             lot_id=o["lot"], participant=o["participant"], unique_slot=f"offer:{offer_id}:response")

        return self._one(self._round_of(offer_id), build, idempotency_key)

    def opt_out(self, round_id: str, participant: str, product: str, *, on: dt.date | None = None,
                note: str | None = None, actor: str | None = None) -> list[Event]:
        """The participant takes no more of ``product`` in this round: its open offers of the
        product are declined (reason ``other``, the opt-out as note) and no pass offers it again."""
        from dosewise.rounds.events import OfferAnswered

        def build(state: RoundState) -> list[NewEvent]:
            code = self._participant(state, participant, "participant")
            pid = self._product(state, product)
            if pid in state.opted_out.get(code, set()):
                raise RoundError(f"{code} already opted out of {pid} in round {round_id}")
            day = self._day(state, on)
            who = actor or code
            events = [new_event("product.opted_out", ProductOptedOut(participant=code, product=pid, on=day,
                                                                     note=note),
                                actor=who, round_id=round_id, participant=code)]
            for oid, o in state.offers.items():
                if (o["participant"] == code and o["status"] == "offered"
                        and state.lots[o["lot"]]["product"] == pid):
                    events.append(new_event("offer.declined", OfferAnswered(
                        offer=oid, on=day, reason="other", note=f"opted out of {pid} for the rest of the round"),
                        actor=who, round_id=round_id, offer_id=oid, lot_id=o["lot"], participant=code,
                        unique_slot=f"offer:{oid}:response"))
            return events

        return self._batch(round_id, build)

    def delay(self, offer_id: str, until: dt.date, *, on: dt.date | None = None, note: str | None = None,
              actor: str | None = None) -> Event:
        """The participant asks that its accepted offer ship no earlier than ``until``."""

        def build(state: RoundState) -> NewEvent:
            o = state.offers[offer_id]
            if o["status"] != "accepted":
                raise RoundError(f"offer {offer_id} is {o['status']}; only an accepted offer can be delayed")
            day = self._day(state, on)
            if until <= day:
                raise InputError(f"the new date must be after {day}", field="until", value=until.isoformat())
            expiry = _d(state.lots[o["lot"]]["expiry"])
            if until >= expiry:
                raise InputError(f"the lot expires on {expiry}", field="until", value=until.isoformat())
            return new_event("offer.delayed", OfferDelayed(offer=offer_id, on=day, until=until, note=note),
                             actor=actor or o["participant"], round_id=state.round_id, offer_id=offer_id,
                             lot_id=o["lot"], participant=o["participant"])

        return self._one(self._round_of(offer_id), build)

    def transfer(self, offer_id: str, to: str, doses: int, *, on: dt.date | None = None,
                 note: str | None = None, actor: str | None = None, idempotency_key: str | None = None) -> Event:
        """Offer ``doses`` of an accepted, unshipped offer on to participant ``to``; the doses
        move only when ``to`` accepts (:meth:`answer_transfer`)."""
        rid = self._round_of(offer_id)

        def build(state: RoundState) -> NewEvent:
            o = state.offers[offer_id]
            code = self._participant(state, to, "to")
            if code == o["participant"]:
                raise InputError("a participant cannot transfer doses to itself", field="to", value=to)
            if o["status"] not in HOLDING:
                raise RoundError(f"offer {offer_id} is {o['status']}; only accepted doses can be transferred")
            if isinstance(doses, bool) or not isinstance(doses, int) or doses <= 0:
                raise InputError("doses must be a whole number above zero", field="doses", value=doses)
            left = state.unshipped(offer_id)
            if doses > left:
                raise InputError(f"offer {offer_id} has {left:,} doses not yet shipped or promised", field="doses",
                                 value=doses)
            _, world = self.scenario_world(rid)
            allowed, bilateral = lot_allowed(world, o["lot"])
            i = world.codes.get_loc(code)
            if bilateral or (allowed is not None and not allowed[i]):
                raise RoundError(f"lot {o['lot']} is earmarked by its donor; {code} may not receive it")
            k = world.product_index(state.lots[o["lot"]]["product"])
            if not (world.accepts[i, k] and world.storage_ok[i, k]):
                raise RoundError(f"{code} does not accept or cannot store {state.lots[o['lot']]['product']}")
            n = 1 + sum(1 for t in state.transfers.values() if t["offer"] == offer_id)
            tid = f"{offer_id}:T{n}"
            return new_event("transfer.proposed", TransferProposed(transfer=tid, offer=offer_id, to=code, doses=doses,
                                                                   on=self._day(state, on), note=note),
                             actor=actor or o["participant"], round_id=rid, offer_id=offer_id, lot_id=o["lot"],
                             participant=o["participant"], unique_slot=f"transfer:{tid}:proposed")

        return self._one(rid, build, idempotency_key)

    def answer_transfer(self, round_id: str, transfer_id: str, accept: bool, *, on: dt.date | None = None,
                        note: str | None = None, actor: str | None = None, idempotency_key: str | None = None,
                        participant: str | None = None) -> Event:
        """The receiving participant accepts (the doses become its own) or refuses a transfer."""

        def build(state: RoundState) -> NewEvent:
            t = state.transfers.get(transfer_id)
            if t is None:
                raise InputError("no such transfer in the round", field="transfer", value=transfer_id)
            if participant is not None and t["to"] != participant:
                raise ForbiddenError(f"transfer {transfer_id} is offered to {t['to']}; a participant key for "
                                     f"{participant} may not answer it")
            if t["status"] != "proposed":
                raise RoundError(f"transfer {transfer_id} is already {t['status']}")
            day = self._day(state, on)
            if day < _d(t["proposed_on"]):
                raise RoundError(f"transfer {transfer_id} was proposed on {t['proposed_on']}, after {day}")
            return new_event("transfer.accepted" if accept else "transfer.refused",
                             TransferAnswered(transfer=transfer_id, on=day, note=note),
                             actor=actor or t["to"], round_id=round_id, offer_id=t["offer"], participant=t["to"],
                             unique_slot=f"transfer:{transfer_id}:answer")

        return self._one(round_id, build, idempotency_key)

    # -- readiness ---------------------------------------------------------------------------------
    def record_readiness(self, round_id: str, participant: str, product: str, condition: str, on: dt.date, *,
                         note: str | None = None, actor: str | None = None) -> Event:
        """Record that ``participant`` met ``condition`` for ``product`` on ``on``."""
        from dosewise.rounds.events import READINESS_CONDITIONS

        if condition not in READINESS_CONDITIONS:
            raise InputError(f"condition must be one of {', '.join(READINESS_CONDITIONS)}", field="condition",
                             value=condition)

        def build(state: RoundState) -> NewEvent:
            code = self._participant(state, participant, "participant")
            pid = self._product(state, product)
            return new_event("readiness.recorded", ReadinessRecorded(
                participant=code, product=pid, condition=condition, on=self._day(state, on), note=note),  # type: ignore[arg-type]
                actor=actor or self.actor, round_id=round_id, participant=code)

        return self._one(round_id, build)

    # -- donations ---------------------------------------------------------------------------------
    def donate(self, round_id: str, lot: Lot, *, on: dt.date | None = None, actor: str | None = None,
               idempotency_key: str | None = None) -> list[Event]:
        """Add a donor's lot to a running round. Its earmarks must name participants of the round;
        a lot no earmarked participant can use in time is refused with the reason. A bilateral
        lot is offered in full to its one recipient in the same batch."""
        from dosewise.rounds.events import OfferMade
        from dosewise.scenario import earmark_problems
        from dosewise.world import earmark_mask

        if lot.donor is None:
            raise InputError("a donation names its donor", field="donor")

        def build(state: RoundState) -> list[NewEvent]:
            if state.closed:
                raise RoundError(f"round {round_id} is closed")
            if lot.id in state.lots:
                raise InputError("the round already has a lot with this id", field="lot", value=lot.id)
            problems = earmark_problems((lot,), set(state.opened["participants"]), where="donation")
            if problems:
                where, msg, value = problems[0]
                raise InputError(msg, field=where, value=value)
            sc, world = self.scenario_world(round_id)
            from dosewise.products import catalogue, resolve_product

            product = resolve_product(lot.product, catalogue(sc.products))
            if product is None:
                raise InputError("unknown product", field="product", value=lot.product)
            day = self._day(state, on)
            if lot.expiry <= day:
                raise RoundError(f"donation {lot.id} refused: it expires on {lot.expiry}, not after {day}")
            allowed = earmark_mask(world.participants, lot.earmarks)
            why = donation_refusal(world, allowed, product, lot.available, lot.expiry, day, sc.round.response_days)
            if why is not None:
                raise RoundError(f"donation {lot.id} refused: {why}")
            events = [new_event("lot.donated", LotDonated(
                lot=lot.id, product=product, doses=lot.doses, available=lot.available, expiry=lot.expiry,
                source=lot.source or f"donated by {lot.donor}", donor=lot.donor, channel=lot.channel or "covax",
                earmarks=None if lot.earmarks is None else lot.earmarks.as_payload(), pledged=lot.pledged, on=day),
                actor=actor or self.actor, round_id=round_id, lot_id=lot.id)]
            if lot.bilateral:
                events.append(bilateral_offer(round_id, lot, product, max(day, lot.available),
                                              sc.round.response_days, actor or self.actor, OfferMade))
            return events

        return self._batch(round_id, build, idempotency_key)

    # -- the humanitarian buffer -------------------------------------------------------------------
    def request_buffer(self, round_id: str, lot_id: str, participant: str, doses: int, *, for_whom: str, why: str,
                       on: dt.date | None = None, request: str | None = None, actor: str | None = None) -> Event:
        """Apply to a lot's humanitarian buffer: who (a participant), how many, for whom, why."""

        def build(state: RoundState) -> NewEvent:
            if lot_id not in state.lots:
                raise InputError("no such lot in the round", field="lot", value=lot_id)
            code = self._participant(state, participant, "participant")
            if isinstance(doses, bool) or not isinstance(doses, int) or doses <= 0:
                raise InputError("doses must be a whole number above zero", field="doses", value=doses)
            if not for_whom.strip() or not why.strip():
                raise InputError("a buffer request says for whom and why", field="for_whom" if not for_whom.strip()
                                 else "why")
            rid = request or f"B{len(state.buffer_requests) + 1}"
            if rid in state.buffer_requests:
                raise InputError("a buffer request with this id exists", field="request", value=rid)
            return new_event("buffer.requested", BufferRequested(
                request=rid, lot=lot_id, participant=code, doses=doses, for_whom=for_whom, why=why,
                on=self._day(state, on)), actor=actor or code, round_id=round_id, lot_id=lot_id, participant=code,
                unique_slot=f"buffer:{round_id}:{rid}:requested")

        return self._one(round_id, build)

    def decide_buffer(self, round_id: str, request: str, approve: bool, *, on: dt.date | None = None,
                      reason: str | None = None, actor: str | None = None) -> Event:
        """Approve (the doses leave the buffer and are held by the applicant, to be shipped) or
        refuse, with a reason, a buffer request."""

        def build(state: RoundState) -> NewEvent:
            r = state.buffer_requests.get(request)
            if r is None:
                raise InputError("no such buffer request in the round", field="request", value=request)
            if r["status"] != "requested":
                raise RoundError(f"buffer request {request} is already {r['status']}")
            if not approve and not (reason or "").strip():
                raise InputError("a refusal gives its reason", field="reason")
            if approve:
                have = state.lots[r["lot"]]["buffer"]
                if r["doses"] > have:
                    raise RoundError(f"lot {r['lot']} holds {have:,} buffer doses; request {request} asks "
                                     f"{r['doses']:,}")
                _, world = self.scenario_world(round_id)
                allowed, bilateral = lot_allowed(world, r["lot"])
                i = world.codes.get_loc(r["participant"])
                if bilateral or (allowed is not None and not allowed[i]):
                    raise RoundError(f"lot {r['lot']} is earmarked by its donor; {r['participant']} may not "
                                     "receive it")
            return new_event("buffer.approved" if approve else "buffer.refused",
                             BufferDecided(request=request, on=self._day(state, on), reason=reason),
                             actor=actor or self.actor, round_id=round_id, lot_id=r["lot"],
                             participant=r["participant"], unique_slot=f"buffer:{round_id}:{request}:decision",
                             offer_id=buffer_offer_id(round_id, request) if approve else None)

        return self._one(round_id, build)

    # -- shipments ---------------------------------------------------------------------------------
    def send(self, offer_id: str, doses: int | None, *, on: dt.date, shipment: str | None = None,
             actor: str | None = None) -> Event:
        """Ship ``doses`` (default: all not yet shipped) of an accepted offer as one shipment.
        Refused beyond the doses accepted, before a requested delay, before the participant is
        ready for the product (when the round asks for readiness) or after the lot's expiry."""
        rid = self._round_of(offer_id)

        def build(state: RoundState) -> NewEvent:
            o = state.offers[offer_id]
            if o["status"] not in HOLDING:
                raise RoundError(f"offer {offer_id} is {o['status']}; only accepted doses ship")
            left = state.unshipped(offer_id)
            n = left if doses is None else doses
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise InputError("doses must be a whole number above zero", field="doses", value=n)
            if n > left:
                raise InputError(f"offer {offer_id} has {left:,} accepted doses left to ship", field="doses",
                                 value=n)
            day = self._day(state, on)
            if o.get("answered_on") and day < _d(o["answered_on"]):
                raise RoundError(f"offer {offer_id} was accepted on {o['answered_on']}, after {day}")
            if o.get("ship_after") and day < _d(o["ship_after"]):
                raise RoundError(f"{o['participant']} asked for receipt no earlier than {o['ship_after']}")
            lot = state.lots[o["lot"]]
            if day >= _d(lot["expiry"]):
                raise RoundError(f"lot {o['lot']} expires on {lot['expiry']}")
            sc, _ = self.scenario_world(rid)
            if sc.round.readiness is not None:
                missing = state.ready(o["participant"], lot["product"], sc.round.readiness.conditions, day)
                if missing:
                    raise RoundError(f"{o['participant']} is not ready for {lot['product']} on {day}: missing "
                                     f"{', '.join(missing)}")
            sid = shipment or f"{offer_id}:S{1 + sum(1 for s in state.shipments.values() if s['offer'] == offer_id)}"
            if sid in state.shipments:
                raise InputError("a shipment with this id exists", field="shipment", value=sid)
            return new_event("shipment.sent", ShipmentSent(shipment=sid, offer=offer_id, doses=n, on=day),
                             actor=actor or self.actor, round_id=rid, offer_id=offer_id, lot_id=o["lot"],
                             participant=o["participant"], unique_slot=f"shipment:{rid}:{sid}:sent")

        return self._one(rid, build)

    def deliver(self, round_id: str, shipment: str, *, on: dt.date, actor: str | None = None) -> Event:
        """Confirm a shipment's delivery; records the doses' shelf life left on arrival."""

        def build(state: RoundState) -> NewEvent:
            sh = state.shipments.get(shipment)
            if sh is None:
                raise InputError("no such shipment in the round", field="shipment", value=shipment)
            if sh["delivered_on"] is not None:
                raise RoundError(f"shipment {shipment} was delivered on {sh['delivered_on']}")
            day = self._day(state, on)
            if day < _d(sh["sent_on"]):
                raise RoundError(f"shipment {shipment} was sent on {sh['sent_on']}, after {day}")
            shelf = (_d(state.lots[sh["lot"]]["expiry"]) - day).days
            return new_event("shipment.delivered", ShipmentDelivered(shipment=shipment, on=day, shelf_life_days=shelf),
                             actor=actor or self.actor, round_id=round_id, offer_id=sh["offer"], lot_id=sh["lot"],
                             participant=sh["participant"], unique_slot=f"shipment:{round_id}:{shipment}:delivered")

        return self._one(round_id, build)

    def expire_unused(self, round_id: str, shipment: str, doses: int, *, on: dt.date,
                      actor: str | None = None) -> Event:
        """Record delivered doses that expired unused at the participant (on or after expiry)."""

        def build(state: RoundState) -> NewEvent:
            sh = state.shipments.get(shipment)
            if sh is None:
                raise InputError("no such shipment in the round", field="shipment", value=shipment)
            if sh["delivered_on"] is None:
                raise RoundError(f"shipment {shipment} has not been delivered")
            if isinstance(doses, bool) or not isinstance(doses, int) or doses <= 0:
                raise InputError("doses must be a whole number above zero", field="doses", value=doses)
            if sh["expired"] + doses > sh["doses"]:
                raise InputError(f"shipment {shipment} delivered {sh['doses']:,} doses, {sh['expired']:,} already "
                                 "recorded expired", field="doses", value=doses)
            day = self._day(state, on)
            expiry = _d(state.lots[sh["lot"]]["expiry"])
            if day < expiry:
                raise RoundError(f"lot {sh['lot']} expires on {expiry}, after {day}")
            return new_event("shipment.expired", ShipmentExpired(shipment=shipment, doses=doses, on=day),
                             actor=actor or self.actor, round_id=round_id, offer_id=sh["offer"], lot_id=sh["lot"],
                             participant=sh["participant"])

        return self._one(round_id, build)


def bilateral_offer(round_id: str, lot: Lot, product: str, day: dt.date, response_days: int, actor: str,
                    offer_made: Any) -> NewEvent:
    """The offer of a whole bilateral lot to its one recipient (pass 0: not the facility's pool)."""
    assert lot.earmarks is not None
    code = lot.earmarks.recipients[0].upper()
    oid = f"{round_id}:{lot.id}:{code}:0"
    deadline = min(day + dt.timedelta(days=response_days), lot.expiry)
    return new_event("offer.made", offer_made(offer=oid, lot=lot.id, participant=code, doses=int(lot.doses),
                                              deadline=deadline, pass_=0,
                                              why=f"bilateral donation from {lot.donor or '?'} ({product})"),
                     actor=actor, round_id=round_id, offer_id=oid, lot_id=lot.id, participant=code)


def terms_of(lot: Lot) -> Mapping[str, Any]:
    """The donor terms a ``lot.added`` event records for a scenario lot (only those given)."""
    out: dict[str, Any] = {}
    if lot.donor is not None:
        out["donor"] = lot.donor
    if lot.channel is not None:
        out["channel"] = lot.channel
    if lot.earmarks is not None:
        out["earmarks"] = lot.earmarks.as_payload()
    if lot.pledged is not None:
        out["pledged"] = lot.pledged
    return out
