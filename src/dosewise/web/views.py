"""What each page shows, as plain rows computed from the ledger through :class:`~dosewise.app.Desk`.

No HTML here: the templates render these rows, :mod:`dosewise.web.charts` turns them into chart
specs. Every figure is read from the round's recorded state; nothing is filled in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dosewise.app import Desk
from dosewise.rounds import RoundState
from dosewise.web.geo import place

__all__ = [
    "STATUSES",
    "Flow",
    "board_rows",
    "entitlement_rows",
    "expiry_rows",
    "flows",
    "map_rows",
    "participant_offers",
    "status_rows",
    "supply_rows",
]

STATUSES = ("offered", "accepted", "declined", "lapsed", "shipped", "delivered")
PARTS = ("accepted", "open", "pool", "expired", "buffer")
EXPIRY_WARNING_DAYS = 60
"""A lot whose undelivered doses expire within this many days of the round's date is at risk
(or within the round's minimum shelf life on arrival, when that is longer)."""


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def supply_rows(desk: Desk, state: RoundState) -> dict[str, list[dict[str, Any]]]:
    """Supply per lot (with its donor: the lot's recorded source), per product and per donor."""
    sc, _ = desk.rounds.scenario_world(state.round_id)
    source = {lot.id: lot.source for lot in sc.lots}
    lots = []
    for lot_id, lot in state.lots.items():
        lots.append({"lot": lot_id, "product": lot["product"], "donor": source.get(lot_id) or "not recorded",
                     "supply": lot["supply"], "available": lot["available"], "expiry": lot["expiry"],
                     **{part: lot[part] for part in PARTS}})  # type: ignore[literal-required]
    return {"lots": lots, "products": _group(lots, "product"), "donors": _group(lots, "donor")}


def _group(rows: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        acc = out.setdefault(r[key], {key: r[key], "lots": 0, "supply": 0, **dict.fromkeys(PARTS, 0)})
        acc["lots"] += 1
        for k in ("supply", *PARTS):
            acc[k] += r[k]
    return sorted(out.values(), key=lambda r: -r["supply"])


def status_rows(state: RoundState, participant: str | None = None) -> list[dict[str, Any]]:
    """Offers and doses by status (every status listed, zeros included)."""
    count: Counter[str] = Counter()
    doses: Counter[str] = Counter()
    for o in state.offers.values():
        if participant is None or o["participant"] == participant:
            count[o["status"]] += 1
            doses[o["status"]] += o["doses"]
    return [{"status": s, "offers": count[s], "doses": doses[s]} for s in STATUSES]


def board_rows(desk: Desk, state: RoundState) -> dict[str, Any]:
    """The round board: offers by status, open offers by deadline, declines with their reasons."""
    names = _names(desk, state)
    today = state.today
    open_offers = []
    answered = []
    for o in sorted(state.offers.values(), key=lambda o: (o["deadline"], o["participant"])):
        row = {**o, "name": names.get(o["participant"], o["participant"])}
        if o["status"] == "offered":
            deadline = _date(o["deadline"])
            row["days_left"] = None if today is None or deadline is None else (deadline - today).days
            open_offers.append(row)
        elif o["status"] in ("declined", "lapsed"):
            answered.append(row)
    reasons = Counter(str(o["reason"] or ("no answer" if o["status"] == "lapsed" else "none given")) for o in answered)
    return {"statuses": status_rows(state), "open": open_offers, "declined": answered,
            "reasons": [{"reason": k, "offers": v} for k, v in reasons.most_common()]}


def _names(desk: Desk, state: RoundState) -> dict[str, str]:
    world = desk.world(state.round_id)
    return {str(code): str(name) for code, name in zip(world.codes, world.participants["name"], strict=True)}


def map_rows(desk: Desk, state: RoundState) -> list[dict[str, Any]]:
    """Doses per 100 people per participant: doses held (accepted, shipped, delivered) and on open offer."""
    world = desk.world(state.round_id)
    held: Counter[str] = Counter()
    open_: Counter[str] = Counter()
    for o in state.offers.values():
        if o["status"] in ("accepted", "shipped", "delivered"):
            held[o["participant"]] += o["doses"]
        elif o["status"] == "offered":
            open_[o["participant"]] += o["doses"]
    rows = []
    for code, name, pop in zip(world.codes, world.participants["name"], world.population, strict=True):
        code = str(code)
        where = place(code)
        doses = held[code] + open_[code]
        per100 = 100.0 * doses / float(pop) if pop > 0 else None
        rows.append({"code": code, "name": str(name), "population": round(float(pop)), "held": held[code],
                     "open": open_[code], "doses": doses, "per100": None if per100 is None else round(per100, 2),
                     "key": where.key, "drawn": where.drawn, "lon": where.lon, "lat": where.lat})
    return sorted(rows, key=lambda r: -(r["per100"] or 0.0))


def expiry_rows(state: RoundState) -> list[dict[str, Any]]:
    """Per lot: doses not yet delivered and the days left before they expire (from the round's date)."""
    today = state.today
    min_shelf = int(state.opened.get("min_shelf_life_days") or 0)
    threshold = max(EXPIRY_WARNING_DAYS, min_shelf)
    shipped: Counter[str] = Counter()
    for o in state.offers.values():
        if o["status"] in ("shipped", "delivered"):
            shipped[o["lot"]] += o["doses"]
    rows = []
    for lot_id, lot in state.lots.items():
        expiry = dt.date.fromisoformat(lot["expiry"])
        days = None if today is None else (expiry - today).days
        undelivered = lot["pool"] + lot["open"] + lot["accepted"] - shipped[lot_id]
        rows.append({"lot": lot_id, "product": lot["product"], "expiry": lot["expiry"], "days_left": days,
                     "pool": lot["pool"], "open": lot["open"],
                     "accepted_not_shipped": lot["accepted"] - shipped[lot_id],
                     "expired": lot["expired"], "undelivered": undelivered,
                     "at_risk": days is not None and days <= threshold and undelivered > 0})
    return sorted(rows, key=lambda r: (r["days_left"] is None, r["days_left"] or 0))


@dataclass
class Flow:
    """One reallocation pass of one lot: declined and lapsed doses (left) pooled (middle) and
    re-offered to new recipients (right). Each side sums to ``total``."""

    lot: str
    pass_: int
    on: str
    order: str
    pool: int
    sources: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(max(sum(s["doses"] for s in self.sources), sum(t["doses"] for t in self.targets)))


def flows(desk: Desk, state: RoundState) -> list[Flow]:
    """Where declined and lapsed doses went, pass by pass: each refused offer counts once, in the
    first reallocation pass of its lot after it was made; the pass's new offers are its targets."""
    names = _names(desk, state)
    refused = sorted((o for o in state.offers.values() if o["status"] in ("declined", "lapsed")),
                     key=lambda o: o["seq"])
    by_offer: dict[tuple[str, int, str], dict[str, Any]] = {}
    for o in state.offers.values():
        by_offer[(o["lot"], o["pass"], o["participant"])] = o
    used: set[str] = set()
    out: list[Flow] = []
    for p in state.passes:
        number = int(p["pass"])
        for lot_id, info in p["lots"].items():
            flow = Flow(lot=lot_id, pass_=number, on=str(p["on"]), order=str(p["order"]), pool=int(info["pool"]))
            for o in refused:
                if o["lot"] == lot_id and o["pass"] < number and o["offer"] not in used:
                    used.add(o["offer"])
                    flow.sources.append({"label": f"{names.get(o['participant'], o['participant'])} "
                                                  f"({o['status']})", "code": o["participant"],
                                         "status": o["status"], "doses": int(o["doses"])})
            refused_doses = sum(s["doses"] for s in flow.sources)
            if flow.pool > refused_doses:
                flow.sources.append({"label": "other doses in the pool", "code": "", "status": "pool",
                                     "doses": flow.pool - refused_doses})
            offered = 0
            for item in info["offered"]:
                code = str(item["participant"])
                made = by_offer.get((lot_id, number, code))
                flow.targets.append({"label": f"{names.get(code, code)}", "code": code, "doses": int(item["doses"]),
                                     "status": made["status"] if made else "offered"})
                offered += int(item["doses"])
            if flow.pool > offered:
                flow.targets.append({"label": "not re-offered (stays in the pool)", "code": "", "status": "pool",
                                     "doses": flow.pool - offered})
            if refused_doses > flow.pool:
                flow.targets.append({"label": "expired before the pass", "code": "", "status": "expired",
                                     "doses": refused_doses - flow.pool})
            out.append(flow)
    return out


def participant_offers(desk: Desk, code: str) -> list[dict[str, Any]]:
    """Every offer made to ``code``, in every round, newest first."""
    rows = []
    for rid in desk.round_ids():
        state = desk.view(rid)
        for o in state.offers.values():
            if o["participant"] == code:
                rows.append({**o, "round_id": rid, "round_name": state.opened.get("name", rid),
                             "today": state.today.isoformat() if state.today else None})
    return sorted(rows, key=lambda o: -o["seq"])


def entitlement_rows(desk: Desk, code: str) -> list[dict[str, Any]]:
    """Per round that includes ``code``: its doses against its pro-rata entitlement, the supply
    net of the buffer shared by population among the round's participants."""
    rows = []
    for rid in desk.round_ids():
        state = desk.view(rid)
        if not state.opened:
            continue
        world = desk.world(rid)
        codes = [str(c) for c in world.codes]
        if code not in codes:
            continue
        pop = float(world.population[codes.index(code)])
        total_pop = float(world.population.sum())
        supply = sum(lot["supply"] - lot["buffer"] for lot in state.lots.values())
        entitled = supply * pop / total_pop if total_pop > 0 else math.nan
        mine = status_rows(state, code)
        held = sum(r["doses"] for r in mine if r["status"] in ("accepted", "shipped", "delivered"))
        open_ = sum(r["doses"] for r in mine if r["status"] == "offered")
        first = sum(o["doses"] for o in state.offers.values() if o["participant"] == code and o["pass"] == 0)
        rows.append({"round_id": rid, "round_name": state.opened.get("name", rid), "population": round(pop),
                     "supply": supply, "entitled": round(entitled), "first_offered": first, "held": held,
                     "open": open_, "held_per100": 100.0 * held / pop if pop else None,
                     "entitled_per100": 100.0 * entitled / pop if pop else None,
                     "ratio": (held + open_) / entitled if entitled else None})
    return rows
