"""The round's event types: one payload schema per type, validated when written and when read.

Payloads hold JSON values without floats (the ledger hashes their canonical text), so need
scores travel as decimal strings. Unknown keys are refused, so a payload that does not match
its schema never enters the ledger and a tampered one is reported when read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    "ReallocationPass",
    "RoundAdvanced",
    "RoundClosed",
    "RoundOpened",
    "new_event",
    "payload_of",
]

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


class RoundClosed(Payload):
    on: dt.date | None = None


PAYLOADS: dict[str, type[Payload]] = {
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
        return schema.model_validate(ev.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IntegrityError(f"event seq {ev.seq} ({ev.type}): payload field {where}: {first['msg']}") from None
