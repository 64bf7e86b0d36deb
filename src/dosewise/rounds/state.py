"""A round's state as the projection of its events, and the allocations it implies.

:class:`RoundState` applies events one by one (a table from event type to handler, each
reading the type's payload schema), so replaying the ledger gives the live state. Per lot, at
every moment::

    open offers + accepted + pool + expired + buffer == supply,   open == Σ doses of open offers
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np

from dosewise.errors import IntegrityError
from dosewise.ledger import Event
from dosewise.rounds.events import (
    BufferHeld,
    LotAdded,
    LotExpired,
    NeedRecorded,
    OfferAnswered,
    OfferMade,
    OfferMoved,
    ReallocationPass,
    RoundAdvanced,
    RoundOpened,
    payload_of,
)

if TYPE_CHECKING:
    import pandas as pd

    from dosewise.allocation import Allocation
    from dosewise.world import World

__all__ = [
    "HOLDING",
    "LotBalance",
    "OfferStatus",
    "RoundState",
    "balances",
    "held_allocation",
    "offered_allocation",
    "project",
]

OfferStatus = Literal["offered", "accepted", "declined", "lapsed", "shipped", "delivered"]
HOLDING: tuple[str, ...] = ("accepted", "shipped", "delivered")
"""Statuses under which a participant holds the offer's doses."""
NEXT: dict[str, tuple[str, ...]] = {
    "offered": ("accepted", "declined", "lapsed"),
    "accepted": ("shipped",),
    "shipped": ("delivered",),
}
"""The transitions an offer may make."""


class LotBalance(TypedDict):
    """Where a lot's doses are (each a whole number of doses)."""

    product: str
    supply: int
    available: str
    expiry: str
    pool: int
    open: int
    accepted: int
    expired: int
    buffer: int


_PARTS = ("open", "accepted", "pool", "expired", "buffer")
_OFFER_FIELDS = ("offer", "lot", "participant", "doses", "status", "deadline", "pass", "why", "reason", "note",
                 "wish", "answered_on")


@dataclass
class RoundState:
    """The projection of one round's events."""

    round_id: str
    opened: dict[str, Any] = field(default_factory=dict)
    today: dt.date | None = None
    lots: dict[str, LotBalance] = field(default_factory=dict)
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)
    passes: list[dict[str, Any]] = field(default_factory=list)
    need: dict[str, float] | None = None
    need_source: str = ""
    closed: bool = False
    last_seq: int = 0

    # -- projection ---------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Apply one event of this round (events of other types are integrity failures)."""
        handler = _HANDLERS.get(ev.type)
        if handler is None:
            raise IntegrityError(f"event seq {ev.seq}: unknown round event type {ev.type!r}", seq=ev.seq)
        try:
            handler(self, ev, payload_of(ev))
        except KeyError as exc:
            raise IntegrityError(f"event seq {ev.seq} ({ev.type}) refers to unknown {exc.args[0]!r}",
                                 seq=ev.seq) from None
        self.last_seq = ev.seq

    # -- snapshots -----------------------------------------------------------------------------
    def to_json(self) -> str:
        """The whole state as JSON text (offers by column, so a long round loads fast)."""
        import json

        cols = list(_OFFER_FIELDS)
        offers = {c: [o[c] for o in self.offers.values()] for c in cols}
        return json.dumps({
            "round_id": self.round_id, "opened": self.opened, "today": None if self.today is None else
            self.today.isoformat(), "lots": self.lots, "offers": offers, "passes": self.passes, "need": self.need,
            "need_source": self.need_source, "closed": self.closed, "last_seq": self.last_seq,
        }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RoundState:
        """The state :meth:`to_json` wrote."""
        import json

        data = json.loads(text)
        cols = data["offers"]
        n = len(cols["offer"])
        offers = {cols["offer"][i]: {c: cols[c][i] for c in _OFFER_FIELDS} for i in range(n)}
        return cls(round_id=data["round_id"], opened=data["opened"],
                   today=None if data["today"] is None else dt.date.fromisoformat(data["today"]),
                   lots=data["lots"], offers=offers, passes=data["passes"], need=data["need"],
                   need_source=data["need_source"], closed=data["closed"], last_seq=data["last_seq"])

    # -- views ---------------------------------------------------------------------------------
    def offers_frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = ["offer", "lot", "participant", "doses", "status", "deadline", "pass", "reason", "note", "wish", "why"]
        if not self.offers:
            return pd.DataFrame(columns=cols)
        return pd.DataFrame(list(self.offers.values()))[cols]

    def lots_frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame.from_dict(dict(self.lots), orient="index")
        frame.index.name = "lot"
        return frame

    def open_by_lot(self) -> dict[str, int]:
        """Σ doses of offers still open, per lot (must equal each lot's ``open``)."""
        out = dict.fromkeys(self.lots, 0)
        for o in self.offers.values():
            if o["status"] == "offered":
                out[o["lot"]] += o["doses"]
        return out

    def problems(self) -> list[str]:
        """Every broken balance, in words; empty when every dose is accounted for."""
        out: list[str] = []
        open_sum = self.open_by_lot()
        for lot_id, lot in self.lots.items():
            total = sum(lot[k] for k in _PARTS)  # type: ignore[literal-required]
            if total != lot["supply"]:
                out.append(f"lot {lot_id}: open + accepted + pool + expired + buffer = {total:,} "
                           f"but supply is {lot['supply']:,}")
            negative = [k for k in _PARTS if lot[k] < 0]  # type: ignore[literal-required]
            if negative:
                out.append(f"lot {lot_id}: negative {', '.join(negative)}")
            if open_sum[lot_id] != lot["open"]:
                out.append(f"lot {lot_id}: open doses {lot['open']:,} but open offers hold {open_sum[lot_id]:,}")
        return out

    def balance_ok(self) -> bool:
        return not self.problems()

    def holdings(self) -> dict[str, int]:
        """Doses accepted or on open offer, per participant."""
        out: dict[str, int] = {}
        for o in self.offers.values():
            if o["status"] in (*HOLDING, "offered"):
                out[o["participant"]] = out.get(o["participant"], 0) + o["doses"]
        return out

    def refused(self) -> dict[str, set[str]]:
        """Per lot, the participants that declined or let lapse an offer of it."""
        out: dict[str, set[str]] = {}
        for o in self.offers.values():
            if o["status"] in ("declined", "lapsed"):
                out.setdefault(o["lot"], set()).add(o["participant"])
        return out


def _opened(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, RoundOpened)
    s.opened = dict(ev.payload)
    s.today = p.opens


def _lot_added(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, LotAdded)
    s.lots[p.lot] = LotBalance(product=p.product, supply=p.doses, available=p.available.isoformat(),
                               expiry=p.expiry.isoformat(), pool=p.doses, open=0, accepted=0, expired=0, buffer=0)


def _buffer(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, BufferHeld)
    lot = s.lots[p.lot]
    lot["pool"] -= p.doses
    lot["buffer"] += p.doses


def _offer_made(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, OfferMade)
    if p.offer in s.offers:
        raise IntegrityError(f"event seq {ev.seq}: offer {p.offer} made twice", seq=ev.seq)
    lot = s.lots[p.lot]
    lot["pool"] -= p.doses
    lot["open"] += p.doses
    s.offers[p.offer] = {
        "offer": p.offer, "lot": p.lot, "participant": p.participant, "doses": p.doses, "status": "offered",
        "deadline": p.deadline.isoformat(), "pass": p.pass_, "why": p.why, "reason": None, "note": None,
        "wish": None, "answered_on": None,
    }


def _answered(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, OfferAnswered)
    offer = s.offers[p.offer]
    if offer["status"] != "offered":
        raise IntegrityError(f"event seq {ev.seq}: offer {p.offer} answered twice", seq=ev.seq)
    lot = s.lots[offer["lot"]]
    lot["open"] -= offer["doses"]
    if ev.type == "offer.accepted":
        offer["status"] = "accepted"
        lot["accepted"] += offer["doses"]
    else:
        offer["status"] = "declined" if ev.type == "offer.declined" else "lapsed"
        lot["pool"] += offer["doses"]
        offer["reason"], offer["note"], offer["wish"] = p.reason, p.note, p.wish
    offer["answered_on"] = None if p.on is None else p.on.isoformat()


def _moved(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, OfferMoved)
    offer = s.offers[p.offer]
    target = ev.type.split(".")[1]
    if target not in NEXT.get(offer["status"], ()):
        raise IntegrityError(f"event seq {ev.seq}: offer {p.offer} cannot go from {offer['status']} to {target}",
                             seq=ev.seq)
    offer["status"] = target


def _expired(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, LotExpired)
    lot = s.lots[p.lot]
    lot["pool"] -= p.doses
    lot["expired"] += p.doses


def _advanced(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, RoundAdvanced)
    s.today = p.to


def _need(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, NeedRecorded)
    s.need = {k: float(v) for k, v in p.scores.items()}
    s.need_source = p.source


def _pass(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ReallocationPass)
    s.passes.append(dict(ev.payload))


def _closed(s: RoundState, ev: Event, p: Any) -> None:
    s.closed = True


_HANDLERS: dict[str, Callable[[RoundState, Event, Any], None]] = {
    "round.opened": _opened,
    "lot.added": _lot_added,
    "buffer.held": _buffer,
    "offer.made": _offer_made,
    "offer.accepted": _answered,
    "offer.declined": _answered,
    "offer.lapsed": _answered,
    "offer.shipped": _moved,
    "offer.delivered": _moved,
    "lot.expired": _expired,
    "round.advanced": _advanced,
    "need.recorded": _need,
    "reallocation.pass": _pass,
    "round.closed": _closed,
}


def project(events: Iterable[Event], round_id: str) -> RoundState:
    """Rebuild a round's state by replaying its events."""
    state = RoundState(round_id)
    for ev in events:
        if ev.round_id == round_id:
            state.apply(ev)
    return state


def balances(state: RoundState) -> pd.DataFrame:
    """Per-lot balance with the conservation check as a column (``open`` also checked against
    the doses of the open offers)."""
    frame = state.lots_frame()
    open_sum = state.open_by_lot()
    frame["open_offers"] = [open_sum[lot] for lot in state.lots]
    frame["balanced"] = [
        sum(lot[k] for k in _PARTS) == lot["supply"]  # type: ignore[literal-required]
        and min(lot[k] for k in _PARTS) >= 0  # type: ignore[literal-required]
        and open_sum[lot_id] == lot["open"]
        for lot_id, lot in state.lots.items()
    ]
    return frame


def _to_allocation(state: RoundState, world: World, keep: Callable[[Mapping[str, Any]], bool],
                   label: str) -> Allocation:
    from dosewise.allocation import Allocation

    lots = world.lots
    codes = {c: i for i, c in enumerate(world.codes)}
    cols = {str(lot): j for j, lot in enumerate(lots.index)}
    doses = np.zeros((world.n, len(lots)), dtype=np.int64)
    for o in state.offers.values():
        if keep(o):
            doses[codes[o["participant"]], cols[o["lot"]]] += int(o["doses"])
    buffer = np.array([state.lots[str(lot)]["buffer"] for lot in lots.index], dtype=np.int64)
    supply = lots["doses"].to_numpy(dtype=np.int64)
    remainder = supply - doses.sum(axis=0) - buffer
    return Allocation(policy=label, participants=world.codes, lots=lots, doses=doses, buffer=buffer,
                      remainder=remainder, notes={"round": state.round_id, "as_of": str(state.today)})


def held_allocation(state: RoundState, world: World, *, include_open: bool = False) -> Allocation:
    """What participants hold (accepted, shipped, delivered; with ``include_open`` also open
    offers) as an :class:`~dosewise.allocation.Allocation`; the rest of each lot is remainder."""
    statuses = (*HOLDING, "offered") if include_open else HOLDING
    return _to_allocation(state, world, lambda o: o["status"] in statuses, f"round {state.round_id} held")


def offered_allocation(state: RoundState, world: World, *, passes: Iterable[int] = (0,)) -> Allocation:
    """The offers made in the given passes (0: the policy's first allocation), whatever their answer."""
    wanted = set(passes)
    return _to_allocation(state, world, lambda o: o["pass"] in wanted, f"round {state.round_id} offered")
