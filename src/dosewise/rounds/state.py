"""A round's state as the projection of its events, and the allocations it implies.

:class:`RoundState` applies events one by one (a table from event type to handler, each
reading the type's payload schema), so replaying the ledger gives the live state. Per lot, at
every moment::

    open offers + accepted + pool + expired + buffer == supply,   open == Σ doses of open offers
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from dosewise.errors import IntegrityError
from dosewise.ledger import Event
from dosewise.rounds.events import (
    AcceptanceLapsed,
    BufferDecided,
    BufferHeld,
    BufferRequested,
    LotAdded,
    LotDonated,
    LotExpired,
    NeedRecorded,
    OfferAcceptedInPart,
    OfferAnswered,
    OfferDelayed,
    OfferMade,
    OfferMoved,
    ProductOptedOut,
    ReadinessRecorded,
    ReallocationPass,
    RoundAdvanced,
    RoundApproved,
    RoundOpened,
    RoundProposed,
    ShipmentDelivered,
    ShipmentExpired,
    ShipmentSent,
    TransferAnswered,
    TransferProposed,
    payload_of,
)
from dosewise.rounds.offers import FIELDS, Ints, Offers, pack_column, unpack_column

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
    "lot_balances",
    "offered_allocation",
    "project",
]

OfferStatus = Literal["offered", "accepted", "declined", "lapsed", "shipped", "delivered", "transferred"]
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
_OFFER_FIELDS = FIELDS
SNAPSHOT_FORMAT = 2
"""The layout of :meth:`RoundState.to_json`'s text. 1 (no ``format`` key): every offer column a list;
2: integer columns packed as 64-bit integers, columns with few distinct values as those values and
one packed code per offer (:func:`~dosewise.rounds.offers.pack_column`), and the rows of the offer
ids in sorted order (``order``). :meth:`RoundState.from_json`
reads both."""


@dataclass
class RoundState:
    """The projection of one round's events: lots, offers, passes and the mechanism's records.

    Built by replaying the round's events (:func:`project`, :meth:`Rounds.state`); never
    written to directly. Per lot, after every event,
    ``open + accepted + pool + expired + buffer == supply`` (:meth:`problems`).

    Parameters
    ----------
    round_id : str
        The round.
    opened : dict
        The ``round.opened`` payload (rules, scenario, reallocation order); empty until opened.
    today : datetime.date, optional
        The round's date (its last ``round.advanced``, else its opening).
    lots : dict of str to LotBalance
        Per lot: product, supply, available, expiry and where its doses are (pool, open, accepted,
        expired, buffer).
    offers : Offers
        Per offer id: lot, participant, doses, status, deadline, pass, why, reason, note, wish (a
        mapping that reads as a dict; a snapshot's offers are kept as columns until read).
    passes : list of dict
        One entry per reallocation pass.
    need : dict of str to float, optional
        The need vector the round's reallocation ranks by.
    need_source : str
        Where that need vector came from.
    closed : bool
        The round is closed.
    last_seq : int
        The sequence number of the last event applied.
    proposal : dict, optional
        The ``round.proposed`` payload of a round awaiting approval.
    approval : dict, optional
        The ``round.approved`` payload.
    lot_terms : dict of str to dict
        Per donated lot: donor, channel, earmarks, pledged, donated on.
    opted_out : dict of str to set of str
        Per participant, the products it opted out of.
    transfers : dict of str to dict
        Transfers between participants, by id.
    readiness : dict of (str, str) to dict
        Per (participant, product): condition → the date it was met.
    buffer_requests : dict of str to dict
        Humanitarian-buffer requests, by id.
    shipments : dict of str to dict
        Shipments, by id.

    Examples
    --------
    >>> from dosewise import Rounds, load_demo, open_store
    >>> rounds = Rounds(open_store("memory"))
    >>> state = rounds.state(rounds.open(load_demo()))
    >>> state.phase, len(state.offers), state.problems()
    ('open', 165, [])
    """

    round_id: str
    opened: dict[str, Any] = field(default_factory=dict)
    today: dt.date | None = None
    lots: dict[str, LotBalance] = field(default_factory=dict)
    offers: Offers = field(default_factory=Offers)
    passes: list[dict[str, Any]] = field(default_factory=list)
    need: dict[str, float] | None = None
    need_source: str = ""
    closed: bool = False
    last_seq: int = 0
    proposal: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.offers, Offers):
            self.offers = Offers(self.offers)

    @property
    def phase(self) -> Literal["proposed", "open", "closed"]:
        """Where the round is.

        Returns
        -------
        {"proposed", "open", "closed"}
            ``proposed``: awaiting a reviewer's approval, no offer out.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> state.phase
        'open'
        """
        if self.closed:
            return "closed"
        return "open" if self.opened else "proposed"

    lot_terms: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per lot with donor terms: donor, channel, earmarks, pledged, donated on."""
    opted_out: dict[str, set[str]] = field(default_factory=dict)
    """Per participant, the products it opted out of for the rest of the round."""
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    readiness: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    """Per (participant, product): condition → the date it was met."""
    buffer_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- projection ---------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Apply one event of this round.

        Parameters
        ----------
        ev : Event
            A recorded event of this round.

        Raises
        ------
        IntegrityError
            An event type a round does not know, or one that refers to an unknown lot or offer.

        Examples
        --------
        >>> from dosewise import RoundState, Rounds, load_demo, open_store
        >>> store = open_store("memory")
        >>> rid = Rounds(store).open(load_demo())
        >>> state = RoundState(rid)
        >>> for event in store.read(round_id=rid):
        ...     state.apply(event)
        >>> state.last_seq == store.head().seq
        True
        """
        handler = _HANDLERS.get(ev.type)
        if handler is None:
            raise IntegrityError(f"event seq {ev.seq}: unknown round event type {ev.type!r}", seq=ev.seq)
        try:
            handler(self, ev, payload_of(ev))
        except KeyError as exc:
            raise IntegrityError(f"event seq {ev.seq} ({ev.type}) refers to unknown {exc.args[0]!r}",
                                 seq=ev.seq) from None
        self.last_seq = ev.seq

    def copy(self) -> RoundState:
        """An independent copy, cheaper than a deep copy.

        The mutable parts (lots, offers, passes, the need vector and the mechanism's records) are
        copied; the recorded payloads, never changed once applied, are shared.

        Returns
        -------
        RoundState
            The copy.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> twin = state.copy()
        >>> oid = next(iter(twin.offers))
        >>> twin.offers[oid]["status"] = "declined"
        >>> state.offers[oid]["status"]
        'offered'
        """
        return RoundState(
            round_id=self.round_id, opened=self.opened, today=self.today,
            lots={k: LotBalance(**v) for k, v in self.lots.items()},
            offers=self.offers.copy(), passes=list(self.passes),
            need=None if self.need is None else dict(self.need), need_source=self.need_source,
            closed=self.closed, last_seq=self.last_seq, proposal=self.proposal, approval=self.approval,
            lot_terms=dict(self.lot_terms), opted_out={k: set(v) for k, v in self.opted_out.items()},
            transfers={k: dict(v) for k, v in self.transfers.items()}, readiness={k: dict(v) for k, v in
                                                                                  self.readiness.items()},
            buffer_requests={k: dict(v) for k, v in self.buffer_requests.items()},
            shipments={k: dict(v) for k, v in self.shipments.items()})

    # -- snapshots -----------------------------------------------------------------------------
    def to_json(self) -> str:
        """The whole state as JSON text (offers by column, so a long round loads fast).

        Returns
        -------
        str
            What :meth:`from_json` reads back; stored as the round's snapshots.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> RoundState.from_json(state.to_json()) == state
        True
        """
        import json

        offers: dict[str, Any] = {c: pack_column(self.offers.column(c)) for c in _OFFER_FIELDS if c != "offer"}
        ids = offers["offer"] = self.offers.column("offer")
        # the rows of the ids in sorted order: a load finds offers by bisection, without a dict of every id
        offers["order"] = Ints.pack(Offers.sorted_rows(ids), unsigned32=True)
        return json.dumps({
            "format": SNAPSHOT_FORMAT, "round_id": self.round_id, "opened": self.opened,
            "today": None if self.today is None else self.today.isoformat(), "lots": self.lots, "offers": offers,
            "passes": self.passes, "need": self.need,
            "need_source": self.need_source, "closed": self.closed, "last_seq": self.last_seq,
            "proposal": self.proposal, "approval": self.approval,
            **self._mechanism_json(),
        }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RoundState:
        """The state :meth:`to_json` wrote.

        Parameters
        ----------
        text : str
            JSON text from :meth:`to_json`.

        Returns
        -------
        RoundState
            The state it describes.

        Raises
        ------
        IntegrityError
            The text refers to offers it does not hold.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> RoundState.from_json(state.to_json()).offers == state.offers
        True
        """
        import json

        import orjson

        # the offers stay as columns (no dict per offer until one is read); the cyclic garbage
        # collector is paused while the text is parsed: the many objects a long round's text holds
        # would otherwise trigger scans of objects none of which is garbage
        paused = gc.isenabled()
        gc.disable()
        try:
            try:
                data = orjson.loads(text)  # the same JSON, parsed about 1.3-2x faster than by json
            except orjson.JSONDecodeError:  # what only json reads: NaN, integers beyond 64 bits
                data = json.loads(text)
            if data.get("format", 1) not in (1, SNAPSHOT_FORMAT):
                raise IntegrityError(f"snapshot of round {data.get('round_id')}: unknown format {data['format']!r}")
            cols = data["offers"]
            order = cols.get("order")
            offers = Offers.from_columns(cols["offer"], {c: unpack_column(cols[c]) for c in _OFFER_FIELDS},
                                         None if order is None else Ints.unpack(order).ints)
        finally:
            if paused:
                gc.enable()
        state = cls(round_id=data["round_id"], opened=data["opened"],
                    today=None if data["today"] is None else dt.date.fromisoformat(data["today"]),
                    lots=data["lots"], offers=offers, passes=data["passes"], need=data["need"],
                    need_source=data["need_source"], closed=data["closed"], last_seq=data["last_seq"],
                    proposal=data.get("proposal"), approval=data.get("approval"))
        state._mechanism_load(data.get("mechanism"))
        return state

    def _mechanism_json(self) -> dict[str, Any]:
        """Donor terms, opt-outs, transfers, readiness, buffer requests, shipments and the offers'
        own extra fields (partial acceptance, delay, shipped doses), when the round has any."""
        extra = self.offers.extras()
        body = {"lot_terms": self.lot_terms, "opted_out": {k: sorted(v) for k, v in self.opted_out.items()},
                "transfers": self.transfers, "buffer_requests": self.buffer_requests, "shipments": self.shipments,
                "readiness": [[p, q, met] for (p, q), met in sorted(self.readiness.items())], "offers": extra}
        return {"mechanism": body} if any(body.values()) else {}

    def _mechanism_load(self, body: dict[str, Any] | None) -> None:
        if not body:
            return
        self.lot_terms = body["lot_terms"]
        self.opted_out = {k: set(v) for k, v in body["opted_out"].items()}
        self.transfers, self.buffer_requests = body["transfers"], body["buffer_requests"]
        self.shipments = body["shipments"]
        self.readiness = {(p, q): met for p, q, met in body["readiness"]}
        for oid, extra in body["offers"].items():
            if oid in self.offers:
                self.offers[oid].update(extra)
            else:
                raise IntegrityError(f"snapshot of round {self.round_id}: extra fields for unknown offer {oid}")

    # -- views ---------------------------------------------------------------------------------
    def offers_frame(self) -> pd.DataFrame:
        """Every offer as a row.

        Returns
        -------
        pandas.DataFrame
            offer, lot, participant, doses, status, deadline, pass, reason, note, wish, why.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> frame = state.offers_frame()
        >>> len(frame), sorted(set(frame["status"]))
        (165, ['offered'])
        """
        import pandas as pd

        cols = ["offer", "lot", "participant", "doses", "status", "deadline", "pass", "reason", "note", "wish", "why"]
        if not self.offers:
            return pd.DataFrame(columns=cols)
        return pd.DataFrame({c: self.offers.column(c) for c in cols})

    def lots_frame(self) -> pd.DataFrame:
        """Every lot's balance as a row.

        Returns
        -------
        pandas.DataFrame
            Indexed by lot: product, supply, available, expiry, pool, open, accepted, expired, buffer.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> lots = state.lots_frame()
        >>> int(lots.loc["AZ-2021H1", "supply"])
        96000000
        """
        import pandas as pd

        frame = pd.DataFrame.from_dict(dict(self.lots), orient="index")
        frame.index.name = "lot"
        return frame

    def open_by_lot(self) -> dict[str, int]:
        """Doses of the offers still open, per lot (must equal each lot's ``open``).

        Returns
        -------
        dict of str to int
            Doses by lot id.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> all(state.open_by_lot()[lot] == balance["open"] for lot, balance in state.lots.items())
        True
        """
        out = dict.fromkeys(self.lots, 0)
        offers = self.offers
        for lot, status, doses in zip(offers.column("lot"), offers.column("status"), offers.column("doses"),
                                      strict=True):
            if status == "offered":
                out[lot] += doses
        return out

    def problems(self) -> list[str]:
        """Every broken balance, in words.

        Returns
        -------
        list of str
            Empty when every dose is accounted for.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> state.problems()
        []
        >>> state.lots["AZ-2021H1"]["pool"] += 1  # a dose from nowhere
        >>> state.problems()
        ['lot AZ-2021H1: open + accepted + pool + expired + buffer = 96,000,001 but supply is 96,000,000']
        """
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
        """Whether every dose of every lot is accounted for (:meth:`problems` is empty).

        Returns
        -------
        bool
            True when the balance holds.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> state.balance_ok()
        True
        """
        return not self.problems()

    def holdings(self) -> dict[str, int]:
        """Doses accepted or on open offer, per participant.

        Returns
        -------
        dict of str to int
            Doses by participant code.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> state = rounds.state(rounds.open(load_demo()))
        >>> held = state.holdings()
        >>> sum(held.values()) == sum(lot["open"] + lot["accepted"] for lot in state.lots.values())
        True
        """
        out: dict[str, int] = {}
        offers, holding = self.offers, (*HOLDING, "offered")
        for code, status, doses in zip(offers.column("participant"), offers.column("status"), offers.column("doses"),
                                       strict=True):
            if status in holding:
                out[code] = out.get(code, 0) + doses
        return out

    def refused(self) -> dict[str, set[str]]:
        """Per lot, the participants that declined or let lapse an offer of it (or opted out).

        Returns
        -------
        dict of str to set of str
            Participant codes by lot id; no later pass offers them that lot.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> _ = rounds.respond(f"{rid}:AZ-2021H1:PRK:0", "decline", reason="efficacy_concerns")
        >>> rounds.state(rid).refused()
        {'AZ-2021H1': {'PRK'}}
        """
        out: dict[str, set[str]] = {}
        offers = self.offers
        for lot, code, status, rest in zip(offers.column("lot"), offers.column("participant"), offers.column("status"),
                                           offers.column("refused_rest"), strict=True):
            if status in ("declined", "lapsed") or rest:
                out.setdefault(lot, set()).add(code)
        for code, products in self.opted_out.items():
            for lot_id, lot in self.lots.items():
                if lot["product"] in products:
                    out.setdefault(lot_id, set()).add(code)
        return out

    # -- views of the rest of the mechanism ----------------------------------------------------
    def unshipped(self, offer_id: str) -> int:
        """Doses of a held offer not yet shipped nor promised to a pending transfer.

        Parameters
        ----------
        offer_id : str
            An offer of the round.

        Returns
        -------
        int
            Doses; 0 for an offer not held (open, declined, lapsed).

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = rounds.respond(oid, "accept")
        >>> rounds.state(rid).unshipped(oid) == rounds.state(rid).offers[oid]["doses"]
        True
        """
        o = self.offers[offer_id]
        if o["status"] not in HOLDING:
            return 0
        if o.get("whole_shipped"):
            return 0
        return int(o["doses"]) - int(o.get("shipped", 0)) - int(o.get("reserved", 0))

    def ready(self, participant: str, product: str, conditions: Iterable[str], on: dt.date) -> list[str]:
        """The readiness conditions the participant has not met for the product by ``on``.

        Parameters
        ----------
        participant : str
            Participant code.
        product : str
            Product id.
        conditions : iterable of str
            The conditions asked for (deployment_plan, indemnity, import_permit, cold_chain).
        on : datetime.date
            The date they must be met by.

        Returns
        -------
        list of str
            The conditions still missing (empty: ready).

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import RoundState
        >>> state = RoundState("R1", readiness={("KEN", "AZD1222"): {"indemnity": "2021-02-10"}})
        >>> state.ready("KEN", "AZD1222", ["indemnity", "cold_chain"], dt.date(2021, 2, 12))
        ['cold_chain']
        >>> state.ready("KEN", "AZD1222", ["indemnity"], dt.date(2021, 2, 5))
        ['indemnity']
        """
        met = self.readiness.get((participant, product), {})
        return [c for c in conditions if c not in met or dt.date.fromisoformat(met[c]) > on]

    def delivery_report(self) -> pd.DataFrame:
        """What happened to the doses, per participant and product.

        Returns
        -------
        pandas.DataFrame
            offered, accepted, shipped, delivered, expired unused at the participant, still to ship
            (doses); shipments; the least and mean shelf life on arrival (days).

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = rounds.respond(oid, "accept")
        >>> _ = rounds.ship(oid, on=dt.date(2021, 2, 22))
        >>> row = rounds.state(rid).delivery_report().set_index(["participant", "product"]).loc[("KEN", "AZD1222")]
        >>> int(row["shipped"]) == int(row["accepted"]) > 0
        True
        """
        import pandas as pd

        rows: dict[tuple[str, str], dict[str, Any]] = {}

        def row(code: str, product: str) -> dict[str, Any]:
            return rows.setdefault((code, product), {
                "participant": code, "product": product, "offered": 0, "accepted": 0, "shipped": 0,
                "delivered": 0, "expired_unused": 0, "to_ship": 0, "shipments": 0, "shelf_life_days_min": None,
                "_shelf": []})

        for oid, o in self.offers.items():
            r = row(o["participant"], self.lots[o["lot"]]["product"])
            r["offered"] += int(o.get("offered", o["doses"])) if o["pass"] >= 0 else 0
            if o["status"] in HOLDING:
                r["accepted"] += int(o["doses"])
                if o.get("whole_shipped"):
                    r["shipped"] += int(o["doses"])
                    if o["status"] == "delivered":
                        r["delivered"] += int(o["doses"])
                r["to_ship"] += self.unshipped(oid) + int(o.get("reserved", 0))
        for sh in self.shipments.values():
            r = row(sh["participant"], sh["product"])
            r["shipments"] += 1
            r["shipped"] += sh["doses"]
            if sh["delivered_on"] is not None:
                r["delivered"] += sh["doses"]
                r["_shelf"].append(sh["shelf_life_days"])
            r["expired_unused"] += sh["expired"]
        out = []
        for r in rows.values():
            shelf = r.pop("_shelf")
            r["shelf_life_days_min"] = min(shelf) if shelf else None
            r["shelf_life_days_mean"] = round(sum(shelf) / len(shelf), 1) if shelf else None
            out.append(r)
        cols = ["participant", "product", "offered", "accepted", "shipped", "delivered", "expired_unused",
                "to_ship", "shipments", "shelf_life_days_min", "shelf_life_days_mean"]
        if not out:
            return pd.DataFrame(columns=cols)
        return pd.DataFrame(out)[cols].sort_values(["participant", "product"]).reset_index(drop=True)


def _proposed(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, RoundProposed)
    if s.proposal is not None or s.opened:
        raise IntegrityError(f"event seq {ev.seq}: round {s.round_id} proposed twice or after opening", seq=ev.seq)
    s.proposal = {"seq": ev.seq, "hash": ev.hash, "actor": ev.actor, "proposed_by": p.proposed_by,
                  "events": [e.model_dump(mode="json") for e in p.events]}


def _approved(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, RoundApproved)
    if s.proposal is None or s.approval is not None or p.proposal_seq != s.proposal["seq"]:
        raise IntegrityError(f"event seq {ev.seq}: approval of round {s.round_id} matches no open proposal",
                             seq=ev.seq)
    if p.approved_by == s.proposal["proposed_by"]:
        raise IntegrityError(f"event seq {ev.seq}: round {s.round_id} approved by its proposer", seq=ev.seq)
    s.approval = {"seq": ev.seq, "actor": ev.actor, "approved_by": p.approved_by}


def _opened(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, RoundOpened)
    s.opened = dict(ev.payload)
    s.today = p.opens


def _lot_added(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, LotAdded)
    s.lots[p.lot] = LotBalance(product=p.product, supply=p.doses, available=p.available.isoformat(),
                               expiry=p.expiry.isoformat(), pool=p.doses, open=0, accepted=0, expired=0, buffer=0)
    _record_terms(s, p)


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
        "wish": None, "answered_on": None, "seq": ev.seq,
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
    if offer.get("shipped") or offer.get("reserved"):
        raise IntegrityError(f"event seq {ev.seq}: offer {p.offer} has shipments or a pending transfer; ship "
                             "it by shipment", seq=ev.seq)
    offer["status"] = target
    offer["whole_shipped"] = True


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
    "round.proposed": _proposed,
    "round.approved": _approved,
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


# -- the rest of the mechanism ------------------------------------------------------------------


def _fail(ev: Event, why: str) -> IntegrityError:
    return IntegrityError(f"event seq {ev.seq} ({ev.type}): {why}", seq=ev.seq)


def _lot_donated(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, LotDonated)
    if p.lot in s.lots:
        raise _fail(ev, f"lot {p.lot} added twice")
    _lot_added(s, ev, p)


def _record_terms(s: RoundState, p: LotAdded) -> None:
    terms = {k: v for k, v in (("donor", p.donor), ("channel", p.channel), ("earmarks", p.earmarks),
                               ("pledged", None if p.pledged is None else p.pledged.isoformat())) if v is not None}
    if isinstance(p, LotDonated):
        terms["donated_on"] = p.on.isoformat()
    if terms:
        s.lot_terms[p.lot] = terms


def _accepted_in_part(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, OfferAcceptedInPart)
    offer = s.offers[p.offer]
    if offer["status"] != "offered":
        raise _fail(ev, f"offer {p.offer} answered twice")
    if p.doses >= offer["doses"]:
        raise _fail(ev, f"offer {p.offer}: part of {p.doses:,} is not below the {offer['doses']:,} offered")
    lot = s.lots[offer["lot"]]
    lot["open"] -= offer["doses"]
    lot["accepted"] += p.doses
    lot["pool"] += offer["doses"] - p.doses
    offer.update(status="accepted", offered=offer["doses"], doses=p.doses, note=p.note, refused_rest=True,
                 answered_on=p.on.isoformat())


def _opted_out(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ProductOptedOut)
    s.opted_out.setdefault(p.participant, set()).add(p.product)


def _delayed(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, OfferDelayed)
    offer = s.offers[p.offer]
    if offer["status"] != "accepted":
        raise _fail(ev, f"offer {p.offer} is {offer['status']}, not accepted")
    offer["ship_after"] = p.until.isoformat()


def _transfer_proposed(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, TransferProposed)
    if p.transfer in s.transfers or p.transfer in s.offers:
        raise _fail(ev, f"transfer {p.transfer} proposed twice")
    if s.unshipped(p.offer) < p.doses:
        raise _fail(ev, f"offer {p.offer} has fewer than {p.doses:,} unshipped doses")
    offer = s.offers[p.offer]
    if p.to == offer["participant"]:
        raise _fail(ev, "a transfer to the offer's own participant")
    offer["reserved"] = int(offer.get("reserved", 0)) + p.doses
    s.transfers[p.transfer] = {"transfer": p.transfer, "offer": p.offer, "from": offer["participant"], "to": p.to,
                               "doses": p.doses, "status": "proposed", "proposed_on": p.on.isoformat(),
                               "note": p.note}


def _transfer_answered(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, TransferAnswered)
    t = s.transfers[p.transfer]
    if t["status"] != "proposed":
        raise _fail(ev, f"transfer {p.transfer} answered twice")
    offer = s.offers[t["offer"]]
    offer["reserved"] = int(offer.get("reserved", 0)) - t["doses"]
    t["answered_on"] = p.on.isoformat()
    if ev.type == "transfer.refused":
        t["status"] = "refused"
        return
    t["status"] = "accepted"
    offer["doses"] -= t["doses"]
    if offer["doses"] == 0:
        offer["status"] = "transferred"
    s.offers[p.transfer] = {
        "offer": p.transfer, "lot": offer["lot"], "participant": t["to"], "doses": t["doses"], "status": "accepted",
        "deadline": offer["deadline"], "pass": offer["pass"], "why": f"transfer from {t['from']}", "reason": None,
        "note": p.note, "wish": None, "answered_on": p.on.isoformat(), "offered": 0, "seq": ev.seq,
    }


def _readiness(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ReadinessRecorded)
    met = s.readiness.setdefault((p.participant, p.product), {})
    if p.condition not in met or p.on.isoformat() < met[p.condition]:
        met[p.condition] = p.on.isoformat()


def _acceptance_lapsed(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, AcceptanceLapsed)
    offer = s.offers[p.offer]
    if p.doses > s.unshipped(p.offer):
        raise _fail(ev, f"offer {p.offer} has fewer than {p.doses:,} unshipped doses")
    lot = s.lots[offer["lot"]]
    lot["accepted"] -= p.doses
    lot["pool"] += p.doses
    offer["doses"] -= p.doses
    offer["refused_rest"] = True
    offer["reason"] = p.reason
    if offer["doses"] == 0:
        offer["status"] = "lapsed"
    elif int(offer.get("shipped", 0)) == offer["doses"]:
        offer["status"] = "shipped"


def _buffer_requested(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, BufferRequested)
    if p.request in s.buffer_requests:
        raise _fail(ev, f"buffer request {p.request} made twice")
    if p.lot not in s.lots:
        raise KeyError(p.lot)
    s.buffer_requests[p.request] = {**p.model_dump(mode="json"), "status": "requested", "decided_on": None,
                                    "reason": None}


def _buffer_decided(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, BufferDecided)
    r = s.buffer_requests[p.request]
    if r["status"] != "requested":
        raise _fail(ev, f"buffer request {p.request} decided twice")
    r["decided_on"], r["reason"] = p.on.isoformat(), p.reason
    if ev.type == "buffer.refused":
        r["status"] = "refused"
        return
    lot = s.lots[r["lot"]]
    if lot["buffer"] < r["doses"]:
        raise _fail(ev, f"lot {r['lot']} holds {lot['buffer']:,} buffer doses, fewer than {r['doses']:,}")
    lot["buffer"] -= r["doses"]
    lot["accepted"] += r["doses"]
    r["status"] = "approved"
    oid = buffer_offer_id(s.round_id, p.request)
    s.offers[oid] = {
        "offer": oid, "lot": r["lot"], "participant": r["participant"], "doses": r["doses"], "status": "accepted",
        "deadline": p.on.isoformat(), "pass": -1, "why": f"humanitarian buffer: {r['why']} (for {r['for_whom']})",
        "reason": None, "note": None, "wish": None, "answered_on": p.on.isoformat(), "offered": 0, "seq": ev.seq,
    }


def buffer_offer_id(round_id: str, request: str) -> str:
    """The id under which an approved buffer request is held (and shipped)."""
    return f"{round_id}:buffer:{request}"


def _shipment_sent(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ShipmentSent)
    if p.shipment in s.shipments:
        raise _fail(ev, f"shipment {p.shipment} sent twice")
    if p.doses > s.unshipped(p.offer):
        raise _fail(ev, f"offer {p.offer} has fewer than {p.doses:,} doses left to ship")
    offer = s.offers[p.offer]
    offer["shipped"] = int(offer.get("shipped", 0)) + p.doses
    if offer["shipped"] == offer["doses"]:
        offer["status"] = "shipped"
    s.shipments[p.shipment] = {"shipment": p.shipment, "offer": p.offer, "participant": offer["participant"],
                               "lot": offer["lot"], "product": s.lots[offer["lot"]]["product"], "doses": p.doses,
                               "sent_on": p.on.isoformat(), "delivered_on": None, "shelf_life_days": None,
                               "expired": 0}


def _shipment_delivered(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ShipmentDelivered)
    sh = s.shipments[p.shipment]
    if sh["delivered_on"] is not None:
        raise _fail(ev, f"shipment {p.shipment} delivered twice")
    sh["delivered_on"], sh["shelf_life_days"] = p.on.isoformat(), p.shelf_life_days
    offer = s.offers[sh["offer"]]
    offer["delivered"] = int(offer.get("delivered", 0)) + sh["doses"]
    if offer["delivered"] == offer["doses"]:
        offer["status"] = "delivered"


def _shipment_expired(s: RoundState, ev: Event, p: Any) -> None:
    assert isinstance(p, ShipmentExpired)
    sh = s.shipments[p.shipment]
    if sh["delivered_on"] is None or sh["expired"] + p.doses > sh["doses"]:
        raise _fail(ev, f"shipment {p.shipment}: {p.doses:,} expired doses exceed the delivered doses")
    sh["expired"] += p.doses


_HANDLERS.update({
    "lot.donated": _lot_donated,
    "offer.accepted_in_part": _accepted_in_part,
    "product.opted_out": _opted_out,
    "offer.delayed": _delayed,
    "transfer.proposed": _transfer_proposed,
    "transfer.accepted": _transfer_answered,
    "transfer.refused": _transfer_answered,
    "readiness.recorded": _readiness,
    "acceptance.lapsed": _acceptance_lapsed,
    "buffer.requested": _buffer_requested,
    "buffer.approved": _buffer_decided,
    "buffer.refused": _buffer_decided,
    "shipment.sent": _shipment_sent,
    "shipment.delivered": _shipment_delivered,
    "shipment.expired": _shipment_expired,
})


def project(events: Iterable[Event], round_id: str) -> RoundState:
    """Rebuild a round's state by replaying its events.

    Parameters
    ----------
    events : iterable of Event
        Recorded events (those of other rounds are skipped).
    round_id : str
        The round.

    Returns
    -------
    RoundState
        The state after the last event.

    Raises
    ------
    IntegrityError
        An event that cannot be replayed (an unknown type, an offer made twice…).

    Examples
    --------
    >>> from dosewise import Rounds, load_demo, open_store, project
    >>> store = open_store("memory")
    >>> rounds = Rounds(store)
    >>> rid = rounds.open(load_demo())
    >>> project(store.read(), rid) == rounds.state(rid)
    True
    """
    state = RoundState(round_id)
    for ev in events:
        if ev.round_id == round_id:
            state.apply(ev)
    return state


def lot_balances(state: RoundState) -> dict[str, dict[str, Any]]:
    """Per lot: its fields (product, supply, pool, open, accepted, expired, buffer, …), the doses of
    its open offers (``open_offers``) and whether it balances (``balanced``: the parts sum to the
    supply, none is negative, and ``open`` equals the doses of the open offers). What
    :func:`balances` gives as a frame, without pandas (a command that prints it needs none)."""
    open_sum = state.open_by_lot()
    return {lot_id: {**lot, "open_offers": open_sum[lot_id],
                     "balanced": sum(lot[k] for k in _PARTS) == lot["supply"]  # type: ignore[literal-required]
                     and min(lot[k] for k in _PARTS) >= 0  # type: ignore[literal-required]
                     and open_sum[lot_id] == lot["open"]}
            for lot_id, lot in state.lots.items()}


def balances(state: RoundState) -> pd.DataFrame:
    """Per-lot balance with the conservation check as a column (``open`` also checked against
    the doses of the open offers)."""
    frame = state.lots_frame()
    rows = lot_balances(state)
    frame["open_offers"] = [rows[lot]["open_offers"] for lot in state.lots]
    frame["balanced"] = [rows[lot]["balanced"] for lot in state.lots]
    return frame


def _to_allocation(state: RoundState, world: World, keep: Callable[[str, int], bool], label: str) -> Allocation:
    import numpy as np

    from dosewise.allocation import Allocation

    lots = world.lots
    codes = {c: i for i, c in enumerate(world.codes)}
    cols = {str(lot): j for j, lot in enumerate(lots.index)}
    doses = np.zeros((world.n, len(lots)), dtype=np.int64)
    offers = state.offers
    for code, lot, n, status, pass_ in zip(offers.column("participant"), offers.column("lot"), offers.column("doses"),
                                           offers.column("status"), offers.column("pass"), strict=True):
        if keep(status, pass_):
            doses[codes[code], cols[lot]] += int(n)
    buffer = np.array([state.lots[str(lot)]["buffer"] for lot in lots.index], dtype=np.int64)
    supply = lots["doses"].to_numpy(dtype=np.int64)
    remainder = supply - doses.sum(axis=0) - buffer
    return Allocation(policy=label, participants=world.codes, lots=lots, doses=doses, buffer=buffer,
                      remainder=remainder, notes={"round": state.round_id, "as_of": str(state.today)})


def held_allocation(state: RoundState, world: World, *, include_open: bool = False) -> Allocation:
    """What participants hold (accepted, shipped, delivered; with ``include_open`` also open
    offers) as an :class:`~dosewise.allocation.Allocation`; the rest of each lot is remainder."""
    statuses = (*HOLDING, "offered") if include_open else HOLDING
    return _to_allocation(state, world, lambda status, _: status in statuses, f"round {state.round_id} held")


def offered_allocation(state: RoundState, world: World, *, passes: Iterable[int] = (0,)) -> Allocation:
    """The offers made in the given passes (0: the policy's first allocation), whatever their answer."""
    wanted = set(passes)
    return _to_allocation(state, world, lambda _, pass_: pass_ in wanted, f"round {state.round_id} offered")
