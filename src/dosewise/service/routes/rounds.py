"""Rounds: list, propose, approve (two-person rule), advance, status, offers, allocation, need."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, status
from fastapi.responses import Response

from dosewise import app as api
from dosewise.app import Desk
from dosewise.errors import NotFoundError
from dosewise.ledger.identities import Identity
from dosewise.service.auth import EVERYONE, OPERATORS, READERS, IdemKey, Who, allow, desk_of, in_worker, ledger_key
from dosewise.service.problems import ApiError
from dosewise.service.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    OFFER_PATTERN,
    AdvanceIn,
    AdvanceOut,
    ApprovalOut,
    DonationIn,
    EventList,
    EventOut,
    OfferPage,
    OfferStatus,
    ProposalOut,
    ProposeIn,
    RoundList,
    RoundOut,
    RoundSummary,
    Rows,
    TransferAnswerIn,
    TransferList,
    TransferOut,
    event_out,
    offer_out,
    proposal_out,
    round_out,
    rows_of,
)

router = APIRouter(prefix="/rounds", tags=["rounds"])
DeskDep = Annotated[Desk, Depends(desk_of)]
RoundId = Annotated[str, Path(pattern=ID_PATTERN, description="Round id.")]


@router.get("", response_model=RoundList, summary="List the rounds in the ledger")
def list_rounds(desk: DeskDep, who: Who) -> RoundList:
    return RoundList(rounds=[RoundSummary(round_id=rid, phase=desk.view(rid).phase) for rid in desk.round_ids()])


@router.post("", response_model=ProposalOut, status_code=status.HTTP_201_CREATED,
             summary="Propose a round (its offers go out once a reviewer approves)")
def propose(body: ProposeIn, desk: DeskDep, who: Annotated[Identity, Depends(allow(*OPERATORS))],
            idem: IdemKey = None) -> ProposalOut:
    sc = api.load_text(body.scenario, file="request body")
    state = desk.propose_round(sc, identity=who.identity, actor=who.actor, round_id=body.round_id,
                               key=ledger_key(who, idem))
    return proposal_out(state)


@router.get("/{round_id}", response_model=RoundOut, summary="A round's status: phase, per-lot balance, offers")
async def round_status(round_id: RoundId, request: Request, who: Who) -> Response:
    return Response(await in_worker(request, lambda: _status(request, round_id)), media_type="application/json")


def _status(request: Request, round_id: str) -> bytes:
    """A round's status as JSON, computed once per state of the round: observers polling a round
    between two of its events get the answer already written (keyed by the last event applied)."""
    state = request.app.state.desk.view(round_id)
    cache: dict[str, tuple[int, bytes]] = request.app.state.round_status
    known = cache.get(round_id)
    if known is not None and known[0] == state.last_seq:
        return known[1]
    body = round_out(state).model_dump_json(by_alias=True).encode()
    cache[round_id] = (state.last_seq, body)
    return body


@router.get("/{round_id}/proposal", response_model=ProposalOut, summary="The proposal a reviewer approves")
def proposal(round_id: RoundId, desk: DeskDep,
             who: Annotated[Identity, Depends(allow(*READERS))]) -> ProposalOut:
    state = desk.view(round_id)
    if state.proposal is None:
        raise NotFoundError("the round was opened directly; it has no proposal", field="round", value=round_id)
    return proposal_out(state)


@router.post("/{round_id}/approve", response_model=ApprovalOut,
             summary="Approve a proposed round (reviewers; never the proposer's identity)")
def approve(round_id: RoundId, desk: DeskDep, who: Annotated[Identity, Depends(allow("reviewer"))],
            idem: IdemKey = None) -> ApprovalOut:
    desk.approve_round(round_id, identity=who.identity, actor=who.actor, key=ledger_key(who, idem))
    state = desk.view(round_id)
    approved = next(ev for ev in desk.events(round_id=round_id, after=(state.approval or {}).get("seq", 1) - 1,
                                             limit=1))
    return ApprovalOut(round_id=round_id, approval=event_out(approved),
                       offers=sum(1 for o in state.offers.values() if o["pass"] == 0))


@router.post("/{round_id}/advance", response_model=AdvanceOut,
             summary="Move the round's date: lapse overdue offers, expire, re-offer the pool")
def advance(round_id: RoundId, body: AdvanceIn, desk: DeskDep,
            who: Annotated[Identity, Depends(allow(*OPERATORS))], idem: IdemKey = None) -> AdvanceOut:
    events = desk.advance(round_id, body.to, actor=who.actor, key=ledger_key(who, idem))
    return AdvanceOut(round_id=round_id, recorded=len(events),
                      new_offers=sum(1 for e in events if e.type == "offer.made"),
                      events=[event_out(e) for e in events])


@router.get("/{round_id}/offers", response_model=OfferPage,
            summary="A round's offers (a participant sees only its own), paged by ledger sequence")
def offers(round_id: RoundId, request: Request, desk: DeskDep, who: Who,
           status_: Annotated[OfferStatus | None, Query(alias="status")] = None,
           participant: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
           after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: offers made after this seq.")] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> OfferPage:
    if who.role == "participant":
        if participant is not None and participant != who.participant:
            raise ApiError(403, f"a participant key for {who.participant} sees only its own offers")
        participant = who.participant
    state = desk.view(round_id)
    limit = min(limit, request.app.state.settings.page_limit)
    items = [o for o in sorted(state.offers.values(), key=lambda o: o["seq"])
             if o["seq"] > after and (status_ is None or o["status"] == status_)
             and (participant is None or o["participant"] == participant)]
    page = items[:limit]
    return OfferPage(items=[offer_out(o, round_id) for o in page],
                     next_cursor=page[-1]["seq"] if len(items) > limit else None)


@router.get("/{round_id}/allocation", response_model=Rows,
            summary="What participants hold (or were first offered), per participant and product")
def allocation(round_id: RoundId, desk: DeskDep, who: Annotated[Identity, Depends(allow(*READERS))],
               view: Literal["held", "held-and-open", "offered"] = "held") -> Rows:
    if view == "offered":
        allocated = desk.offered_allocation(round_id)
    else:
        allocated = desk.round_allocation(round_id, include_open=view == "held-and-open")
    return Rows(rows=rows_of(allocated.frame()))


@router.get("/{round_id}/need", response_model=Rows,
            summary="Need ranking of the round's participants from the server's WHO weekly file")
def need(round_id: RoundId, request: Request, desk: DeskDep,
         who: Annotated[Identity, Depends(allow(*EVERYONE))],
         as_of: Annotated[dt.date | None, Query(description="Date of the scores (default: the round's date).")]
         = None) -> Rows:
    source = request.app.state.settings.who or api.cached_who()
    if source is None:
        raise NotFoundError("this server has no WHO weekly file: set DOSEWISE_WHO or run `dosewise data pull who`",
                            field="who")
    world = desk.world(round_id)
    day = as_of or desk.view(round_id).today or dt.date.today()
    if not dt.date(2020, 1, 1) <= day <= dt.date(2199, 12, 31):
        raise NotFoundError("no need scores for that date", field="as_of", value=day.isoformat())
    frame = api.need(world.participants, source, day).reset_index()
    return Rows(rows=rows_of(frame), notes=[f"need scores as of {day} from {source.name}"])


TransferId = Annotated[str, Path(pattern=OFFER_PATTERN, description="Transfer id (the offer id and :T<n>).")]
DONORS = ("admin", "coordinator", "donor")
"""Roles that register donated lots: a donor its own, operators on a donor's behalf."""


@router.get("/{round_id}/transfers", response_model=TransferList,
            summary="Transfers of the round (a participant: those from or to it)")
def transfers(round_id: RoundId, desk: DeskDep, who: Who) -> TransferList:
    state = desk.view(round_id)
    items = [t for t in state.transfers.values()
             if who.role != "participant" or who.participant in (t["from"], t["to"])]
    return TransferList(transfers=[TransferOut.model_validate({**t, "round_id": round_id}) for t in items])


def _answer_transfer(accept: bool, round_id: str, transfer_id: str, body: TransferAnswerIn | None, desk: Desk,
                     who: Identity, idem: str | None) -> EventOut:
    return event_out(desk.answer_transfer(round_id, transfer_id, accept, on=body.on if body else None,
                                          note=body.note if body else None, actor=who.actor,
                                          key=ledger_key(who, idem), participant=who.participant))


@router.post("/{round_id}/transfers/{transfer_id}/accept", response_model=EventOut,
             summary="Accept a transfer offered to the caller (the doses become its own)")
def accept_transfer(round_id: RoundId, transfer_id: TransferId, desk: DeskDep,
                    who: Annotated[Identity, Depends(allow("participant"))],
                    body: Annotated[TransferAnswerIn | None, Body()] = None, idem: IdemKey = None) -> EventOut:
    return _answer_transfer(True, round_id, transfer_id, body, desk, who, idem)


@router.post("/{round_id}/transfers/{transfer_id}/refuse", response_model=EventOut,
             summary="Refuse a transfer offered to the caller (the doses stay with the giver)")
def refuse_transfer(round_id: RoundId, transfer_id: TransferId, desk: DeskDep,
                    who: Annotated[Identity, Depends(allow("participant"))],
                    body: Annotated[TransferAnswerIn | None, Body()] = None, idem: IdemKey = None) -> EventOut:
    return _answer_transfer(False, round_id, transfer_id, body, desk, who, idem)


@router.post("/{round_id}/donations", response_model=EventList, status_code=status.HTTP_201_CREATED,
             summary="Register a donated lot with its earmarks (a donor key: its own lots)")
def donate(round_id: RoundId, body: DonationIn, desk: DeskDep, who: Annotated[Identity, Depends(allow(*DONORS))],
           idem: IdemKey = None) -> EventList:
    lot = body.lot
    if who.role == "donor":
        if lot.donor is not None and lot.donor != who.name:
            raise ApiError(403, f"a donor key for {who.name} registers its own lots, not {lot.donor}'s")
        lot = lot.model_copy(update={"donor": who.name})
    elif lot.donor is None:
        raise ApiError(422, "a donation names its donor (field lot.donor)")
    events = desk.donate(round_id, lot, on=body.on, actor=who.actor, key=ledger_key(who, idem))
    return EventList(events=[event_out(e) for e in events])
