"""Offers: read one, accept in full or in part, decline, transfer (participants, their own offers only), ship
(operators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import Response

from dosewise.app import Desk
from dosewise.ledger.identities import Identity
from dosewise.service.auth import OPERATORS, IdemKey, Who, allow, desk_of, in_worker, ledger_key
from dosewise.service.problems import ApiError
from dosewise.service.render import json_answer
from dosewise.service.schemas import (
    OFFER_PATTERN,
    AcceptIn,
    DeclineIn,
    EventOut,
    OfferOut,
    ShipIn,
    TransferIn,
    event_dict,
    event_out,
)

router = APIRouter(prefix="/offers", tags=["offers"])
DeskDep = Annotated[Desk, Depends(desk_of)]
OfferId = Annotated[str, Path(pattern=OFFER_PATTERN, description="Offer id.")]


def _own(desk: Desk, offer_id: str, who: Identity) -> dict[str, Any]:
    offer = desk.offer(offer_id)
    if who.role == "participant" and offer["participant"] != who.participant:
        raise ApiError(403, f"offer {offer_id} is made to {offer['participant']}; a participant key for "
                            f"{who.participant} may not see or answer it")
    return offer


@router.get("/{offer_id}", response_model=OfferOut, summary="One offer (a participant: only its own)")
def get_offer(offer_id: OfferId, desk: DeskDep, who: Who) -> OfferOut:
    offer = _own(desk, offer_id, who)
    return OfferOut.model_validate(offer)


@router.post("/{offer_id}/accept", response_model=EventOut,
             summary="Accept one of the caller's offers, in full or in part (the rest returns to the pool)")
async def accept(offer_id: OfferId, request: Request, who: Annotated[Identity, Depends(allow("participant"))],
                 body: Annotated[AcceptIn | None, Body()] = None, idem: IdemKey = None) -> Response:
    desk: Desk = request.app.state.desk
    ev = await in_worker(request, lambda: desk.respond(
        offer_id, "accept", on=body.on if body else None, key=ledger_key(who, idem), actor=who.actor,
        participant=who.participant, doses=body.doses if body else None, note=body.note if body else None))
    return json_answer(event_dict(ev), EventOut)


@router.post("/{offer_id}/transfer", response_model=EventOut, status_code=201,
             summary="Offer accepted, unshipped doses of the caller's offer on to another participant")
def transfer(offer_id: OfferId, body: TransferIn, desk: DeskDep,
             who: Annotated[Identity, Depends(allow("participant"))], idem: IdemKey = None) -> EventOut:
    _own(desk, offer_id, who)
    return event_out(desk.transfer(offer_id, body.to, body.doses, on=body.on, note=body.note, actor=who.actor,
                                   key=ledger_key(who, idem)))


@router.post("/{offer_id}/decline", response_model=EventOut,
             summary="Decline one of the caller's offers, with a reason, a note and a wish")
async def decline(offer_id: OfferId, body: DeclineIn, request: Request,
                  who: Annotated[Identity, Depends(allow("participant"))], idem: IdemKey = None) -> Response:
    desk: Desk = request.app.state.desk
    ev = await in_worker(request, lambda: desk.respond(
        offer_id, "decline", reason=body.reason, note=body.note, wish=body.wish, on=body.on,
        key=ledger_key(who, idem), actor=who.actor, participant=who.participant))
    return json_answer(event_dict(ev), EventOut)


@router.post("/{offer_id}/ship", response_model=EventOut, summary="Record shipment or delivery of an accepted offer")
def ship(offer_id: OfferId, body: ShipIn, desk: DeskDep, who: Annotated[Identity, Depends(allow(*OPERATORS))],
         idem: IdemKey = None) -> EventOut:
    return event_out(desk.ship(offer_id, on=body.on, delivered=body.delivered, actor=who.actor,
                               key=ledger_key(who, idem)))
