"""Allocation rounds: offers, acceptance or decline, deadlines and reallocation, as events.

A round is opened over a scenario's lots with a policy; the policy's allocation becomes
offers. Each offer is accepted, declined with a reason (and optionally a wish for where the
doses should go), or lapses at its deadline. Declined and lapsed doses return to the pool and
are re-offered, one pass per :meth:`Rounds.advance`, to participants ranked by the documented
reallocation order:

* ``need`` (default when need scores are given): candidates ranked by need score, highest
  first; each pass offers to the top ``recipients_per_pass`` candidates, split in proportion
  to population × need and capped by what each can absorb;
* ``pro-rata``: all candidates, in proportion to population.

A candidate is skipped, with the reason recorded, when it does not accept or is not approved
for the product, its cold chain cannot hold it, the lot would arrive with less than its
minimum shelf life (default 10 weeks), its absorptive capacity is exhausted before expiry, it
already declined this lot, or it is at the coverage ceiling. Doses no one can use before
expiry are recorded as expired.

Every step is a ledger event; the state is a projection of those events
(:func:`project`), so replaying the ledger gives the live state. Per lot, at every moment::

    open offers + accepted + pool + expired + buffer == supply
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from dosewise.errors import ConflictError, InputError, RoundError
from dosewise.ledger import Event, NewEvent, Store
from dosewise.policies import get_policy, round_to_units, water_fill_level
from dosewise.scenario import DeclineReason, Scenario, parse_scenario, parse_scenario_text
from dosewise.world import World, build_world

OfferStatus = Literal["offered", "accepted", "declined", "lapsed", "shipped", "delivered"]
DECLINE_REASONS: tuple[str, ...] = DeclineReason.__args__  # type: ignore[attr-defined]
_NEXT: dict[str, tuple[str, ...]] = {
    "offered": ("accepted", "declined", "lapsed"),
    "accepted": ("shipped",),
    "shipped": ("delivered",),
}
_HOLDING = ("accepted", "shipped", "delivered")


def _d(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


@dataclass
class RoundState:
    """The projection of one round's events."""

    round_id: str
    opened: dict[str, Any] = field(default_factory=dict)
    today: dt.date | None = None
    lots: dict[str, dict[str, Any]] = field(default_factory=dict)
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)
    passes: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    last_seq: int = 0

    # -- projection ---------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        p = ev.payload
        t = ev.type
        self.last_seq = ev.seq
        if t == "round.opened":
            self.opened = dict(p)
            self.today = _d(p["opens"])
        elif t == "lot.added":
            self.lots[p["lot"]] = {
                "product": p["product"], "supply": p["doses"], "available": p["available"], "expiry": p["expiry"],
                "pool": p["doses"], "open": 0, "accepted": 0, "expired": 0, "buffer": 0,
            }
        elif t == "buffer.held":
            lot = self.lots[p["lot"]]
            lot["pool"] -= p["doses"]
            lot["buffer"] += p["doses"]
        elif t == "offer.made":
            lot = self.lots[p["lot"]]
            lot["pool"] -= p["doses"]
            lot["open"] += p["doses"]
            self.offers[p["offer"]] = {
                "offer": p["offer"], "lot": p["lot"], "participant": p["participant"], "doses": p["doses"],
                "status": "offered", "deadline": p["deadline"], "pass": p["pass"], "why": p.get("why", ""),
                "reason": None, "note": None, "wish": None, "answered_on": None,
            }
        elif t in ("offer.accepted", "offer.declined", "offer.lapsed"):
            offer = self.offers[p["offer"]]
            lot = self.lots[offer["lot"]]
            lot["open"] -= offer["doses"]
            if t == "offer.accepted":
                offer["status"] = "accepted"
                lot["accepted"] += offer["doses"]
            else:
                offer["status"] = "declined" if t == "offer.declined" else "lapsed"
                lot["pool"] += offer["doses"]
                offer["reason"] = p.get("reason")
                offer["note"] = p.get("note")
                offer["wish"] = p.get("wish")
            offer["answered_on"] = p.get("on")
        elif t in ("offer.shipped", "offer.delivered"):
            self.offers[p["offer"]]["status"] = t.split(".")[1]
        elif t == "lot.expired":
            lot = self.lots[p["lot"]]
            lot["pool"] -= p["doses"]
            lot["expired"] += p["doses"]
        elif t == "round.advanced":
            self.today = _d(p["to"])
        elif t == "reallocation.pass":
            self.passes.append(dict(p))
        elif t == "round.closed":
            self.closed = True

    # -- views ---------------------------------------------------------------------------------
    def offers_frame(self) -> pd.DataFrame:
        cols = ["offer", "lot", "participant", "doses", "status", "deadline", "pass", "reason", "note", "wish", "why"]
        if not self.offers:
            return pd.DataFrame(columns=cols)
        return pd.DataFrame(list(self.offers.values()))[cols]

    def lots_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame.from_dict(self.lots, orient="index")
        frame.index.name = "lot"
        return frame

    def balance_ok(self) -> bool:
        return all(_lot_balanced(lot) for lot in self.lots.values())

    def holdings(self) -> dict[str, int]:
        """Doses accepted or on open offer, per participant."""
        out: dict[str, int] = {}
        for o in self.offers.values():
            if o["status"] in (*_HOLDING, "offered"):
                out[o["participant"]] = out.get(o["participant"], 0) + o["doses"]
        return out


def project(events: Iterable[Event], round_id: str) -> RoundState:
    """Rebuild a round's state by replaying its events."""
    state = RoundState(round_id)
    for ev in events:
        if ev.round_id == round_id:
            state.apply(ev)
    return state


def _need_text(x: float) -> str:
    return f"{x:.4f}"


class Rounds:
    """Runs rounds against a ledger store. Stateless between calls: the ledger is the state."""

    def __init__(self, store: Store, *, actor: str = "dosewise", need: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.actor = actor
        self.need = dict(need) if need is not None else None
        self._worlds: dict[str, tuple[Scenario, World]] = {}
        self._states: dict[str, RoundState] = {}
        self._offer_round: dict[str, str] = {}
        self._optimal: dict[str, Any] = {}  # round id -> OptimalState kept for warm re-solves

    # -- reading -------------------------------------------------------------------------------
    def state(self, round_id: str) -> RoundState:
        """The round's projection, brought up to date with events recorded since the last call
        (by this process or any other): only the new events are read and applied."""
        state = self._states.get(round_id) or RoundState(round_id)
        for ev in self.store.read(after_seq=state.last_seq, round_id=round_id):
            state.apply(ev)
            if ev.type == "offer.made" and ev.offer_id:
                self._offer_round[ev.offer_id] = round_id
        if not state.opened:
            raise InputError("no such round in the ledger", field="round", value=round_id)
        self._states[round_id] = state
        return state

    def rounds(self) -> list[str]:
        return [ev.round_id for ev in self.store.read(types=["round.opened"]) if ev.round_id]

    def world(self, round_id: str) -> World:
        """The world the round was opened on, rebuilt from the scenario recorded in the ledger."""
        return self._world(self.state(round_id))[1]

    def _world(self, state: RoundState) -> tuple[Scenario, World]:
        rid = state.round_id
        if rid not in self._worlds:
            sc = parse_scenario(yaml.safe_load(state.opened["scenario_yaml"]), file=f"ledger round {rid}")
            self._worlds[rid] = (sc, build_world(sc))
        return self._worlds[rid]

    def _offer(self, offer_id: str) -> tuple[RoundState, dict[str, Any]]:
        rid = self._offer_round.get(offer_id)
        if rid is None:
            first = next(iter(self.store.read(offer_id=offer_id, types=["offer.made"])), None)
            if first is None or first.round_id is None:
                raise InputError("no such offer in the ledger", field="offer", value=offer_id)
            rid = first.round_id
        state = self.state(rid)
        return state, state.offers[offer_id]

    # -- opening -------------------------------------------------------------------------------
    def open(self, scenario_yaml: str, *, file: str | None = None, round_id: str | None = None) -> str:
        """Open a round from scenario text: allocate by its policy and record the offers.

        Opening the same round again with the same scenario changes nothing and returns its id;
        the same round id with another scenario is a :class:`ConflictError`. Either way nothing
        already recorded is touched.
        """
        sc = parse_scenario_text(scenario_yaml, file=file)
        rules = sc.round
        rid = round_id or rules.id or "R-" + hashlib.sha256(scenario_yaml.encode()).hexdigest()[:10]
        if self._already_open(rid, scenario_yaml):
            return rid
        world = build_world(sc)
        opens = rules.opens or sc.as_of or min(lot.available for lot in sc.lots)
        if rules.reallocation == "optimal":
            from dosewise.optimize.policy import solve_optimal
            from dosewise.policies import optimal_params

            opt = solve_optimal(world, optimal_params(sc.policy.name, sc.policy))
            self._optimal[rid] = opt
            alloc = opt.allocation
        else:
            alloc = get_policy(sc.policy.name)(world, sc.policy)
        deadline = (opens + dt.timedelta(days=rules.response_days)).isoformat()
        events = [
            NewEvent(type="round.opened", actor=self.actor, round_id=rid, unique_slot=f"round:{rid}:opened",
                     payload={"opens": opens.isoformat(), "policy": sc.policy.name, "name": sc.name,
                              "response_days": rules.response_days, "reallocation": rules.reallocation,
                              "min_shelf_life_days": rules.min_shelf_life_days, "scenario_yaml": scenario_yaml,
                              "participants": list(world.codes)}),
        ]
        for j, (lot_id, lot) in enumerate(world.lots.iterrows()):
            events.append(NewEvent(type="lot.added", actor=self.actor, round_id=rid, lot_id=str(lot_id),
                                   payload={"lot": str(lot_id), "product": str(lot["product"]),
                                            "doses": int(lot["doses"]),
                                            "available": lot["available"].date().isoformat(),
                                            "expiry": lot["expiry"].date().isoformat(),
                                            "source": str(lot["source"])}))
            if alloc.buffer[j]:
                events.append(NewEvent(type="buffer.held", actor=self.actor, round_id=rid, lot_id=str(lot_id),
                                       payload={"lot": str(lot_id), "doses": int(alloc.buffer[j])}))
        rows, cols = np.nonzero(alloc.doses)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            code, lot_id = str(world.codes[i]), str(world.lots.index[j])
            oid = f"{rid}:{lot_id}:{code}:0"
            events.append(NewEvent(type="offer.made", actor=self.actor, round_id=rid, offer_id=oid, lot_id=lot_id,
                                   participant=code,
                                   payload={"offer": oid, "lot": lot_id, "participant": code,
                                            "doses": int(alloc.doses[i, j]), "deadline": deadline, "pass": 0,
                                            "why": f"{sc.policy.name} allocation"}))
        try:
            self.store.append(events)
        except ConflictError:
            if self._already_open(rid, scenario_yaml):  # another process opened it first
                return rid
            raise
        self._worlds[rid] = (sc, world)
        return rid

    def _already_open(self, rid: str, scenario_yaml: str) -> bool:
        opened = next(iter(self.store.read(round_id=rid, types=["round.opened"])), None)
        if opened is None:
            return False
        if opened.payload.get("scenario_yaml") != scenario_yaml:
            raise ConflictError(f"round {rid} is already open with another scenario; give the new round another id")
        return True

    # -- responses -----------------------------------------------------------------------------
    def respond(
        self,
        offer_id: str,
        action: Literal["accept", "decline"],
        *,
        reason: str | None = None,
        note: str | None = None,
        wish: str | None = None,
        on: dt.date | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Event:
        """Accept or decline an open offer, before its deadline. A second answer is a ConflictError."""
        state, offer = self._offer(offer_id)
        if action not in ("accept", "decline"):
            raise InputError("action must be accept or decline", field="action", value=action)
        if action == "decline":
            if reason not in DECLINE_REASONS:
                raise InputError(f"decline reason must be one of {', '.join(DECLINE_REASONS)}", field="reason",
                                 value=reason)
        elif reason is not None:
            raise InputError("only a decline takes a reason", field="reason", value=reason)
        day = on or state.today or _d(state.opened["opens"])
        status = offer["status"]
        target = "accepted" if action == "accept" else "declined"
        if status != "offered":
            replay = idempotency_key is not None and any(
                ev.idempotency_key == idempotency_key for ev in self.store.read(offer_id=offer_id)
            )
            if not replay:
                raise ConflictError(f"offer {offer_id} is already {status}; cannot mark it {target}")
        elif day > _d(offer["deadline"]):
            raise RoundError(f"offer {offer_id}: response on {day} is after the deadline {offer['deadline']}")
        elif day < _d(state.opened["opens"]):
            raise RoundError(f"offer {offer_id}: response on {day} is before the round opened on "
                             f"{state.opened['opens']}")
        payload: dict[str, Any] = {"offer": offer_id, "on": day.isoformat()}
        if action == "decline":
            payload.update({"reason": reason, "note": note, "wish": wish})
        return self.store.append_one(
            NewEvent(type=f"offer.{target}", actor=actor or offer["participant"], round_id=state.round_id,
                     offer_id=offer_id, lot_id=offer["lot"], participant=offer["participant"], payload=payload,
                     idempotency_key=idempotency_key, unique_slot=f"offer:{offer_id}:response")
        )

    def ship(self, offer_id: str, *, on: dt.date, delivered: bool = False) -> Event:
        """Record shipment (or delivery) of an accepted offer."""
        state, offer = self._offer(offer_id)
        target = "delivered" if delivered else "shipped"
        if target not in _NEXT.get(offer["status"], ()):
            raise RoundError(f"offer {offer_id} is {offer['status']}; it cannot be {target}")
        return self.store.append_one(
            NewEvent(type=f"offer.{target}", actor=self.actor, round_id=state.round_id, offer_id=offer_id,
                     lot_id=offer["lot"], participant=offer["participant"],
                     payload={"offer": offer_id, "on": on.isoformat()},
                     unique_slot=f"offer:{offer_id}:{target}")
        )

    # -- time and reallocation -----------------------------------------------------------------
    def advance(self, round_id: str, to: dt.date) -> list[Event]:
        """Move the round's clock to ``to``: lapse overdue offers, expire unusable doses, and run one
        reallocation pass over the pool. All of it is recorded as one atomic batch."""
        state = self.state(round_id)
        if state.closed:
            raise RoundError(f"round {round_id} is closed")
        if state.today is not None and to < state.today:
            raise RoundError(f"round {round_id} is already at {state.today}; cannot go back to {to}")
        sc, world = self._world(state)
        events: list[NewEvent] = [NewEvent(type="round.advanced", actor=self.actor, round_id=round_id,
                                           payload={"to": to.isoformat(), "from": str(state.today)})]
        for oid, o in state.offers.items():
            if o["status"] == "offered" and _d(o["deadline"]) < to:
                events.append(NewEvent(type="offer.lapsed", actor=self.actor, round_id=round_id, offer_id=oid,
                                       lot_id=o["lot"], participant=o["participant"],
                                       payload={"offer": oid, "on": to.isoformat(), "reason": "deadline passed"},
                                       unique_slot=f"offer:{oid}:response"))
        # apply the lapses to a scratch copy so the pass sees the doses back in the pool
        scratch = copy.deepcopy(state)
        for k, ne in enumerate(events[1:]):
            scratch.apply(_as_event(ne, scratch.last_seq + k + 1))
        pass_no = len(state.passes) + 1
        made, explain = self._reallocate(scratch, sc, world, to, pass_no)
        events += made
        events.append(NewEvent(type="reallocation.pass", actor=self.actor, round_id=round_id,
                               idempotency_key=f"{round_id}:pass:{pass_no}:{to.isoformat()}",
                               payload={"pass": pass_no, "on": to.isoformat(), **explain}))
        return self.store.append(events)

    def _reallocate(
        self, state: RoundState, sc: Scenario, world: World, today: dt.date, pass_no: int
    ) -> tuple[list[NewEvent], dict[str, Any]]:
        rules = sc.round
        codes = list(world.codes)
        pop = world.population
        parts = world.participants
        holdings = state.holdings()
        held = np.array([holdings.get(c, 0) for c in codes], dtype=np.float64)
        if rules.reallocation == "optimal":
            return self._reoptimize(state, sc, world, today, pass_no)
        order_mode = rules.reallocation if self.need is not None else "pro-rata"
        need = np.array([self.need.get(c, np.nan) for c in codes]) if self.need is not None else np.ones(len(codes))
        events: list[NewEvent] = []
        explain: dict[str, Any] = {"order": order_mode, "lots": {}}
        deadline = today + dt.timedelta(days=rules.response_days)
        declined_by: dict[str, set[str]] = {}
        for o in state.offers.values():
            if o["status"] in ("declined", "lapsed"):
                declined_by.setdefault(o["lot"], set()).add(o["participant"])
        per_pass = int(sc.policy.options.get("recipients_per_pass", 3))
        ceiling = float(sc.policy.tranches[-1])
        for lot_id, lot in state.lots.items():
            pool = int(lot["pool"])
            if pool <= 0:
                continue
            k = world.product_index(lot["product"])
            prod = world.products.loc[lot["product"]]
            unit = int(prod["shipping_unit"])
            expiry = _d(lot["expiry"])
            # shelf life left when the doses arrive: answered by the deadline, then the lead time
            shelf_days = (expiry - deadline).days - parts["lead_time_days"].to_numpy(dtype=np.int64)
            weeks_left = np.maximum(shelf_days, 0) / 7.0
            capacity = parts["capacity_per_week"].to_numpy(dtype=np.float64)
            finite = np.where(np.isinf(capacity), 0.0, capacity)
            room_capacity = np.where(np.isinf(capacity), np.inf, finite * weeks_left) - held
            room_ceiling = (ceiling * pop - parts["people_covered"].to_numpy()) * float(prod["doses_per_course"]) - held
            room = np.minimum(room_capacity, room_ceiling)
            reasons = np.full(len(codes), "", dtype=object)
            reasons[room_ceiling < unit] = "at coverage ceiling"
            reasons[room_capacity < unit] = "absorptive capacity exhausted before expiry"
            reasons[shelf_days < parts["min_shelf_life_days"].to_numpy()] = "shelf life on arrival below minimum"
            reasons[~world.storage_ok[:, k]] = "cold chain"
            reasons[~world.accepts[:, k]] = "does not accept the product"
            reasons[np.isin(codes, list(declined_by.get(lot_id, ())))] = "declined or let lapse this lot"
            if order_mode == "need":
                reasons[np.isnan(need) & (reasons == "")] = "no need score (not in surveillance)"
            cand = np.flatnonzero(reasons == "")
            skipped = {codes[i]: str(reasons[i]) for i in np.flatnonzero(reasons != "")}
            if cand.size == 0:
                fresh_enough = shelf_days >= parts["min_shelf_life_days"].to_numpy()
                anyone_later = bool((fresh_enough & world.accepts[:, k] & world.storage_ok[:, k]).any())
                if not anyone_later or today >= expiry:
                    events.append(NewEvent(type="lot.expired", actor=self.actor, round_id=state.round_id,
                                           lot_id=lot_id, payload={"lot": lot_id, "doses": pool,
                                                                   "why": "no participant can use the doses before "
                                                                          "expiry"}))
                explain["lots"][lot_id] = {"pool": pool, "offered": [], "skipped": _summarise(skipped)}
                continue
            if order_mode == "need":
                ranked = cand[np.argsort(-need[cand], kind="stable")][:per_pass]
                weight = pop[ranked] * need[ranked]
            else:
                ranked = cand[np.argsort(-pop[cand], kind="stable")]
                weight = pop[ranked]
            cap = room[ranked] / np.maximum(weight, 1e-12)
            _, raw = water_fill_level(weight, 1.0, np.zeros(len(ranked)), np.zeros(len(ranked)), cap,
                                      float(pool), float(cap.max()))
            given = round_to_units(raw, unit, pool, upper=room[ranked])
            offered = []
            for rank, (i, d) in enumerate(zip(ranked.tolist(), given.tolist(), strict=True), start=1):
                if d <= 0:
                    continue
                code = codes[i]
                oid = f"{state.round_id}:{lot_id}:{code}:{pass_no}"
                why = (f"pass {pass_no}: rank {rank} by need score {need[i]:.3f}" if order_mode == "need"
                       else f"pass {pass_no}: pro rata to population among {len(ranked)} who can use it")
                events.append(NewEvent(type="offer.made", actor=self.actor, round_id=state.round_id, offer_id=oid,
                                       lot_id=lot_id, participant=code,
                                       payload={"offer": oid, "lot": lot_id, "participant": code, "doses": int(d),
                                                "deadline": deadline.isoformat(), "pass": pass_no, "why": why}))
                offered.append({"participant": code, "doses": int(d),
                                **({"need": _need_text(float(need[i]))} if order_mode == "need" else {})})
            explain["lots"][lot_id] = {"pool": pool, "offered": offered, "skipped": _summarise(skipped)}
        return events, explain

    def _optimal_state(self, state: RoundState, sc: Scenario, world: World) -> Any:
        """The live optimal solution of the round; after a restart, solved again and brought to
        the ledger's state by replaying the recorded re-optimisations in order."""
        from dosewise.optimize.policy import solve_optimal
        from dosewise.optimize.reoptimize import reoptimize_after_decline
        from dosewise.policies import optimal_params

        opt = self._optimal.get(state.round_id)
        if opt is None:
            opt = solve_optimal(world, optimal_params(sc.policy.name, sc.policy))
            for p in state.passes:
                for participant, lot, doses in p.get("reoptimized", []):
                    reoptimize_after_decline(opt, participant, lot, doses)
            self._optimal[state.round_id] = opt
        return opt

    def _reoptimize(
        self, state: RoundState, sc: Scenario, world: World, today: dt.date, pass_no: int
    ) -> tuple[list[NewEvent], dict[str, Any]]:
        """Optimal reallocation: each declined or lapsed offer not yet handled re-optimises the
        returned doses only, on the live HiGHS model (warm start)."""
        from dosewise.optimize.reoptimize import reoptimize_after_decline

        opt = self._optimal_state(state, sc, world)
        handled = {oid for p in state.passes for oid in p.get("handled", [])}
        deadline = today + dt.timedelta(days=sc.round.response_days)
        events: list[NewEvent] = []
        done: list[list[Any]] = []
        handled_now: list[str] = []
        offered: list[dict[str, Any]] = []
        pools = {lot_id: int(lot["pool"]) for lot_id, lot in state.lots.items()}
        for oid, o in state.offers.items():
            if o["status"] not in ("declined", "lapsed") or oid in handled:
                continue
            t0 = time.perf_counter()
            new = reoptimize_after_decline(opt, o["participant"], o["lot"], int(o["doses"]))
            seconds = time.perf_counter() - t0
            done.append([o["participant"], o["lot"], int(o["doses"])])
            handled_now.append(oid)
            for code, d in new[new > 0].items():
                d = min(int(d), pools[o["lot"]])
                if d <= 0:
                    continue
                pools[o["lot"]] -= d
                noid = f"{state.round_id}:{o['lot']}:{code}:{pass_no}"
                why = f"pass {pass_no}: re-optimised after {o['participant']} {o['status']} ({seconds * 1e3:.0f} ms)"
                events.append(NewEvent(type="offer.made", actor=self.actor, round_id=state.round_id, offer_id=noid,
                                       lot_id=o["lot"], participant=str(code),
                                       payload={"offer": noid, "lot": o["lot"], "participant": str(code),
                                                "doses": d, "deadline": deadline.isoformat(), "pass": pass_no,
                                                "why": why}))
                offered.append({"participant": str(code), "doses": d})
        explain = {"order": "optimal", "reoptimized": done, "handled": handled_now,
                   "lots": {lot: {"pool": int(state.lots[lot]["pool"]), "offered": offered, "skipped": {}}
                            for lot in {d[1] for d in done}}}
        return events, explain

    # -- scripted play (demo, tests) -----------------------------------------------------------
    def play(self, round_id: str, *, until_passes: int | None = None) -> RoundState:
        """Answer offers as the scenario scripts them (others by ``default_response``), advancing
        past each deadline until the pool is empty or ``max_passes`` is reached."""
        state = self.state(round_id)
        sc, _ = self._world(state)
        script = {(r.participant.upper(), r.lot): r for r in sc.round.responses}
        for _ in range(until_passes or sc.round.max_passes):
            for oid, o in state.offers.items():
                if o["status"] != "offered":
                    continue
                r = script.get((o["participant"], o["lot"])) or script.get((o["participant"], None))
                if r is not None and o["pass"] == 0:
                    self.respond(oid, r.action, reason=r.reason, note=r.note, wish=r.wish,
                                 idempotency_key=f"{oid}:script")
                elif sc.round.default_response == "accept":
                    self.respond(oid, "accept", idempotency_key=f"{oid}:script")
            state = self.state(round_id)
            if sum(lot["pool"] for lot in state.lots.values()) == 0:
                break
            latest = max((_d(o["deadline"]) for o in state.offers.values()), default=state.today)
            assert latest is not None
            self.advance(round_id, max(latest + dt.timedelta(days=1), state.today or latest))
            state = self.state(round_id)
        return state


def _summarise(skipped: Mapping[str, str]) -> dict[str, Any]:
    """Skip reasons with their participants (codes sorted) so the record says why, compactly."""
    out: dict[str, list[str]] = {}
    for code, why in skipped.items():
        out.setdefault(why, []).append(code)
    return {why: sorted(codes) for why, codes in sorted(out.items())}


def _as_event(ne: NewEvent, seq: int) -> Event:
    """A provisional event for the scratch projection (never stored)."""
    return Event(seq, str(uuid.uuid4()), ne.type, ne.round_id, ne.offer_id, ne.lot_id, ne.participant,
                 dict(ne.payload), ne.actor, dt.datetime.now(dt.UTC), ne.idempotency_key, ne.unique_slot, "", "")


_PARTS = ("open", "accepted", "pool", "expired", "buffer")


def _lot_balanced(lot: Mapping[str, Any]) -> bool:
    """open offers + accepted + pool + expired + buffer == supply, none negative."""
    return bool(sum(lot[k] for k in _PARTS) == lot["supply"] and min(lot[k] for k in _PARTS) >= 0)


def balances(state: RoundState) -> pd.DataFrame:
    """Per-lot balance with the conservation check as a column."""
    frame = state.lots_frame()
    frame["balanced"] = [_lot_balanced(lot) for lot in state.lots.values()]
    return frame

