"""The round's event types: one payload schema per type, validated when written and when read.

Payloads hold JSON values without floats (the ledger hashes their canonical text), so need
scores travel as decimal strings. Unknown keys are refused, so a payload that does not match
its schema never enters the ledger and a tampered one is reported when read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from dosewise.errors import IntegrityError
from dosewise.ledger import Event, NewEvent

__all__ = [
    "PAYLOADS",
    "BufferHeld",
    "LotAdded",
    "LotExpired",
    "NeedRecorded",
    "OfferAnswered",
    "OfferMade",
    "OfferMoved",
    "Payload",
    "ProposedEvent",
    "ReallocationPass",
    "RoundAdvanced",
    "RoundApproved",
    "RoundClosed",
    "RoundOpened",
    "RoundProposed",
    "new_event",
    "payload_of",
]

LATEST_DATE = dt.date(2199, 12, 31)
"""No round date, answer or shipment may lie beyond this."""
MAX_DOSES = 10**15
"""No lot, offer or pool holds more doses than this (well inside 64-bit sums)."""


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoundOpened(Payload):
    opens: dt.date
    policy: str
    name: str
    response_days: int = Field(ge=0)
    reallocation: Literal["need", "pro-rata", "optimal"]
    min_shelf_life_days: int = Field(ge=0)
    scenario: str
    participants: list[str]


class LotAdded(Payload):
    lot: str
    product: str
    doses: int = Field(ge=0, le=MAX_DOSES)
    available: dt.date
    expiry: dt.date
    source: str = ""
    donor: str | None = None
    channel: str | None = None
    earmarks: dict[str, list[str]] | None = None
    pledged: dt.date | None = None


class BufferHeld(Payload):
    lot: str
    doses: int = Field(ge=0, le=MAX_DOSES)


class OfferMade(Payload):
    offer: str
    lot: str
    participant: str
    doses: int = Field(gt=0, le=MAX_DOSES)
    deadline: dt.date
    pass_: int = Field(alias="pass", ge=0)
    why: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OfferAnswered(Payload):
    """``offer.accepted``, ``offer.declined`` and ``offer.lapsed``."""

    offer: str
    on: dt.date | None = None
    reason: str | None = None
    note: str | None = None
    wish: str | None = None


class OfferMoved(Payload):
    """``offer.shipped`` and ``offer.delivered``."""

    offer: str
    on: dt.date


class LotExpired(Payload):
    lot: str
    doses: int = Field(gt=0, le=MAX_DOSES)
    why: str = ""


class RoundAdvanced(Payload):
    to: dt.date
    from_: str = Field(alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NeedRecorded(Payload):
    """The need vector a round's reallocation ranks by, as decimal strings."""

    scores: dict[str, str]
    source: str = ""
    as_of: dt.date | None = None


class ReallocationPass(Payload):
    model_config = ConfigDict(extra="allow", frozen=True)

    pass_: int = Field(alias="pass", ge=1)
    on: dt.date
    order: str


class ProposedEvent(Payload):
    """One event a proposal would record once approved (its type and payload)."""

    type: Literal["round.opened", "need.recorded", "lot.added", "buffer.held", "offer.made"]
    payload: dict[str, Any]


class RoundProposed(Payload):
    """A round as a coordinator proposes it: the events its approval records, offers included.

    ``proposed_by`` is the proposer's identity; a reviewer with the same identity cannot approve it.
    """

    proposed_by: str = Field(min_length=1)
    events: list[ProposedEvent] = Field(min_length=1)


class RoundApproved(Payload):
    """A reviewer's approval of the proposal recorded at ``proposal_seq`` (hash ``proposal_hash``)."""

    proposal_seq: int = Field(ge=1)
    proposal_hash: str
    proposed_by: str
    approved_by: str = Field(min_length=1)


class RoundClosed(Payload):
    on: dt.date | None = None


PAYLOADS: dict[str, type[Payload]] = {
    "round.proposed": RoundProposed,
    "round.approved": RoundApproved,
    "round.opened": RoundOpened,
    "lot.added": LotAdded,
    "buffer.held": BufferHeld,
    "offer.made": OfferMade,
    "offer.accepted": OfferAnswered,
    "offer.declined": OfferAnswered,
    "offer.lapsed": OfferAnswered,
    "offer.shipped": OfferMoved,
    "offer.delivered": OfferMoved,
    "lot.expired": LotExpired,
    "round.advanced": RoundAdvanced,
    "need.recorded": NeedRecorded,
    "reallocation.pass": ReallocationPass,
    "round.closed": RoundClosed,
}
"""Every event type the round layer writes, with its payload schema."""


def _json(model: Payload) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def new_event(type_: str, payload: Payload | dict[str, Any], **columns: Any) -> NewEvent:
    """A :class:`NewEvent` whose payload is checked against its type's schema first."""
    schema = PAYLOADS[type_]
    model = payload if isinstance(payload, Payload) else schema.model_validate(payload)
    if not isinstance(model, schema):
        raise TypeError(f"{type_} takes a {schema.__name__} payload, not {type(model).__name__}")
    return NewEvent(type=type_, payload=_json(model), **columns)


def payload_of(ev: Event) -> Payload:
    """The event's payload as its schema; a payload that does not match is an integrity failure."""
    schema = PAYLOADS.get(ev.type)
    if schema is None:
        raise IntegrityError(f"event seq {ev.seq}: unknown round event type {ev.type!r}")
    try:
        payload = ev.payload
        if "signature" in payload:  # a party's detached signature (dosewise.ledger.signing), not round data
            payload = {k: v for k, v in payload.items() if k != "signature"}
        return schema.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IntegrityError(f"event seq {ev.seq} ({ev.type}): payload field {where}: {first['msg']}") from None


# -- the rest of the mechanism: donations, answers in part, transfers, readiness, the buffer,
# -- shipments. Each type has its own payload class and its own handler in the projection.

Text = Annotated[str, StringConstraints(max_length=20_000)]
"""Free text from a party (a note, a reason, for whom): bounded, kept as text."""
Ident = Annotated[str, StringConstraints(min_length=1, max_length=300)]

READINESS_CONDITIONS: tuple[str, ...] = ("deployment_plan", "indemnity", "import_permit", "cold_chain")
"""The dated conditions a participant meets, per product, before doses are shipped to it."""


class LotDonated(LotAdded):
    """``lot.donated``: a lot a donor gives to a running round, with its terms."""

    on: dt.date
    donor: Ident
    channel: str = "covax"
    earmarks: dict[str, list[str]] | None = None
    pledged: dt.date | None = None


class OfferAcceptedInPart(Payload):
    """``offer.accepted_in_part``: ``doses`` of the offer accepted; the rest goes back to the pool."""

    offer: Ident
    on: dt.date
    doses: int = Field(gt=0, le=MAX_DOSES)
    note: Text | None = None


class ProductOptedOut(Payload):
    """``product.opted_out``: the participant takes no more of the product in this round."""

    participant: Ident
    product: Ident
    on: dt.date
    note: Text | None = None


class OfferDelayed(Payload):
    """``offer.delayed``: the participant asks that an accepted offer ship no earlier than ``until``."""

    offer: Ident
    on: dt.date
    until: dt.date
    note: Text | None = None


class TransferProposed(Payload):
    """``transfer.proposed``: part or all of an accepted offer offered on to another participant."""

    transfer: Ident
    offer: Ident
    to: Ident
    doses: int = Field(gt=0, le=MAX_DOSES)
    on: dt.date
    note: Text | None = None


class TransferAnswered(Payload):
    """``transfer.accepted`` and ``transfer.refused`` (by the receiving participant)."""

    transfer: Ident
    on: dt.date
    note: Text | None = None


class ReadinessRecorded(Payload):
    """``readiness.recorded``: a participant met a condition for a product on a date."""

    participant: Ident
    product: Ident
    condition: Literal["deployment_plan", "indemnity", "import_permit", "cold_chain"]
    on: dt.date
    note: Text | None = None


class AcceptanceLapsed(Payload):
    """``acceptance.lapsed``: the unshipped doses of an accepted offer go back to the pool
    (the participant was not ready for shipment by the deadline)."""

    offer: Ident
    on: dt.date
    doses: int = Field(gt=0, le=MAX_DOSES)
    reason: Text


class BufferRequested(Payload):
    """``buffer.requested``: an application to the humanitarian buffer of a lot."""

    request: Ident
    lot: Ident
    participant: Ident
    doses: int = Field(gt=0, le=MAX_DOSES)
    for_whom: Text
    why: Text
    on: dt.date


class BufferDecided(Payload):
    """``buffer.approved`` and ``buffer.refused``."""

    request: Ident
    on: dt.date
    reason: Text | None = None


class ShipmentSent(Payload):
    """``shipment.sent``: ``doses`` of an accepted offer leave on ``on``."""

    shipment: Ident
    offer: Ident
    doses: int = Field(gt=0, le=MAX_DOSES)
    on: dt.date


class ShipmentDelivered(Payload):
    """``shipment.delivered``: the shipment arrived, with this many days of shelf life left."""

    shipment: Ident
    on: dt.date
    shelf_life_days: int


class ShipmentExpired(Payload):
    """``shipment.expired``: delivered doses that expired unused at the participant."""

    shipment: Ident
    doses: int = Field(gt=0, le=MAX_DOSES)
    on: dt.date


MECHANISM_PAYLOADS: dict[str, type[Payload]] = {
    "lot.donated": LotDonated,
    "offer.accepted_in_part": OfferAcceptedInPart,
    "product.opted_out": ProductOptedOut,
    "offer.delayed": OfferDelayed,
    "transfer.proposed": TransferProposed,
    "transfer.accepted": TransferAnswered,
    "transfer.refused": TransferAnswered,
    "readiness.recorded": ReadinessRecorded,
    "acceptance.lapsed": AcceptanceLapsed,
    "buffer.requested": BufferRequested,
    "buffer.approved": BufferDecided,
    "buffer.refused": BufferDecided,
    "shipment.sent": ShipmentSent,
    "shipment.delivered": ShipmentDelivered,
    "shipment.expired": ShipmentExpired,
}
PAYLOADS.update(MECHANISM_PAYLOADS)
