"""Request and response bodies of the service (they make its OpenAPI document)."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dosewise.scenario import Lot
from dosewise.vocabulary import DeclineReason

if TYPE_CHECKING:
    import pandas as pd

    from dosewise.ledger import Event
    from dosewise.rounds import RoundState

OfferStatus = Literal["offered", "accepted", "declined", "lapsed", "shipped", "delivered"]
ID_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
OFFER_PATTERN = r"^[A-Za-z0-9._:-]{1,300}$"
CODE_PATTERN = r"^[A-Z]{3}$"


def _printable(text: str | None) -> str | None:
    """Free text from another party: any Unicode but NUL and other C0 controls (tab and newline kept)."""
    if text is not None and any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise ValueError("control characters are not accepted")
    return text


FreeText = Annotated[str, AfterValidator(_printable)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposeIn(_In):
    scenario: FreeText = Field(min_length=1, max_length=2_000_000,
                               description='The scenario as YAML text, or "demo" for the built-in demo.')
    round_id: str | None = Field(None, pattern=ID_PATTERN, description="Round id (default: from the scenario).")


class AcceptIn(_In):
    on: dt.date | None = Field(None, description="Date of the answer (default: the round's date).")
    doses: int | None = Field(None, gt=0, le=10_000_000_000, description=(
        "Accept only this many doses of the offer; the rest returns to the pool at once (default: all)."))
    note: FreeText | None = Field(None, max_length=2000, description="Free text kept with a partial acceptance.")


class TransferIn(_In):
    to: str = Field(pattern=CODE_PATTERN, description="The participant offered the doses (ISO3 code).")
    doses: int = Field(gt=0, le=10_000_000_000, description="Accepted, unshipped doses of the offer to pass on.")
    note: FreeText | None = Field(None, max_length=2000)
    on: dt.date | None = None


class TransferAnswerIn(_In):
    note: FreeText | None = Field(None, max_length=2000)
    on: dt.date | None = None


class DonationIn(_In):
    lot: Lot = Field(description="The lot given: id, product, doses, available, expiry, and the donor's terms "
                                 "(channel, earmarks, pledge date). A donor key's name is the lot's donor.")
    on: dt.date | None = Field(None, description="Date of the donation (default: the round's date).")


class DeclineIn(_In):
    reason: DeclineReason
    note: FreeText | None = Field(None, max_length=2000, description="Free text kept with the answer.")
    wish: FreeText | None = Field(None, max_length=500, description="Where the declined doses should go.")
    on: dt.date | None = None


class AdvanceIn(_In):
    to: dt.date


class ShipIn(_In):
    on: dt.date
    delivered: bool = False


class PreviewIn(_In):
    scenario: FreeText = Field(min_length=1, max_length=2_000_000)
    policy: str | None = Field(None, pattern=r"^[a-z0-9-]{1,60}$")


class CompareIn(_In):
    scenario: FreeText = Field(min_length=1, max_length=2_000_000)
    policies: list[Annotated[str, Field(pattern=r"^[a-z0-9-]{1,60}$")]] | None = Field(None, max_length=8)


# -- answers --------------------------------------------------------------------------------------


class Me(BaseModel):
    key_id: str
    name: str
    role: str
    participant: str | None
    actor: str


class KeyOut(Me):
    created_at: str
    revoked_at: str | None


class RevokedOut(KeyOut):
    receipt: str | None = Field(None, description="Where to fetch the receipt of the revocation's event.")


class EventOut(BaseModel):
    seq: int
    event_id: str
    type: str
    round_id: str | None
    offer_id: str | None
    lot_id: str | None
    participant: str | None
    actor: str
    recorded_at: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    receipt: str = Field(description="Where to fetch this event's receipt: its inclusion proof against a signed "
                                     "checkpoint of the ledger.")


class EventList(BaseModel):
    events: list[EventOut]


class TransferOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    round_id: str
    transfer: str
    offer: str
    to: str
    doses: int
    status: str
    proposed_on: str


class TransferList(BaseModel):
    transfers: list[TransferOut]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: int | None = Field(description="Pass as ?after= for the next page; null at the end.")


class RoundSummary(BaseModel):
    round_id: str
    phase: Literal["proposed", "open", "closed"]


class RoundList(BaseModel):
    rounds: list[RoundSummary]


class LotOut(BaseModel):
    lot: str
    product: str
    supply: int
    available: str
    expiry: str
    pool: int
    open: int
    accepted: int
    expired: int
    buffer: int


class RoundOut(BaseModel):
    round_id: str
    phase: Literal["proposed", "open", "closed"]
    today: dt.date | None
    proposed_by: str | None
    approved_by: str | None
    lots: list[LotOut]
    offers: dict[str, int] = Field(description="Number of offers by status.")
    passes: int
    balanced: bool
    problems: list[str]


class OfferOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    offer: str
    round_id: str
    lot: str
    participant: str
    doses: int
    status: OfferStatus
    deadline: str
    pass_: int = Field(alias="pass")
    why: str
    reason: str | None
    note: str | None
    wish: str | None
    answered_on: str | None
    seq: int


class OfferPage(BaseModel):
    items: list[OfferOut]
    next_cursor: int | None


class ProposedOffer(BaseModel):
    offer: str
    lot: str
    participant: str
    doses: int
    deadline: str


class ProposalOut(BaseModel):
    round_id: str
    proposal_seq: int
    proposal_hash: str
    proposed_by: str
    actor: str
    offers: list[ProposedOffer]
    receipt: str = Field(description="Where to fetch the proposal event's receipt.")


class ApprovalOut(BaseModel):
    round_id: str
    approval: EventOut
    offers: int


class AdvanceOut(BaseModel):
    round_id: str
    recorded: int
    new_offers: int
    events: list[EventOut]


class HeadOut(BaseModel):
    seq: int
    hash: str | None
    recorded_at: str | None


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None
    problem: str | None


class Rows(BaseModel):
    rows: list[dict[str, Any]]
    notes: list[str] = []


# -- converters -----------------------------------------------------------------------------------


def event_dict(ev: Event) -> dict[str, Any]:
    """An event as the service shows it: the fields of :class:`EventOut`, in its order."""
    from dosewise.ledger.events import format_time

    return {"seq": ev.seq, "event_id": ev.event_id, "type": ev.type, "round_id": ev.round_id,
            "offer_id": ev.offer_id, "lot_id": ev.lot_id, "participant": ev.participant, "actor": ev.actor,
            "recorded_at": format_time(ev.recorded_at), "payload": dict(ev.payload), "prev_hash": ev.prev_hash,
            "hash": ev.hash, "receipt": f"/ledger/receipts/{ev.seq}"}


def event_out(ev: Event) -> EventOut:
    return EventOut(**event_dict(ev))


def offer_out(offer: dict[str, Any], round_id: str) -> OfferOut:
    return OfferOut.model_validate({**offer, "round_id": round_id})


def round_out(state: RoundState) -> RoundOut:
    counts: dict[str, int] = {}
    for o in state.offers.values():
        counts[o["status"]] = counts.get(o["status"], 0) + 1
    problems = state.problems()
    return RoundOut(
        round_id=state.round_id, phase=state.phase, today=state.today,
        proposed_by=None if state.proposal is None else state.proposal["proposed_by"],
        approved_by=None if state.approval is None else state.approval["approved_by"],
        lots=[LotOut(lot=lot_id, **lot) for lot_id, lot in state.lots.items()], offers=counts,
        passes=len(state.passes), balanced=not problems, problems=problems)


def proposal_out(state: RoundState) -> ProposalOut:
    p = state.proposal
    assert p is not None
    offers = [ProposedOffer(offer=e["payload"]["offer"], lot=e["payload"]["lot"],
                            participant=e["payload"]["participant"], doses=e["payload"]["doses"],
                            deadline=e["payload"]["deadline"]) for e in p["events"] if e["type"] == "offer.made"]
    return ProposalOut(round_id=state.round_id, proposal_seq=p["seq"], proposal_hash=p["hash"],
                       proposed_by=p["proposed_by"], actor=p["actor"], offers=offers,
                       receipt=f"/ledger/receipts/{p['seq']}")


def _cell(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, str | int | float | bool):
        return str(value)
    return value


def rows_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON objects (missing and non-finite numbers as null)."""
    cols = [str(c) for c in frame.columns]
    return [{c: _cell(v) for c, v in zip(cols, row, strict=True)} for row in frame.itertuples(index=False)]


class CheckpointOut(BaseModel):
    checkpoint: dict[str, Any] = Field(description="The signed body: log id, tree size, root hash, head hash, time.")
    signatures: list[dict[str, str]]


class ReceiptOut(BaseModel):
    """An event with its inclusion proof in the tree a signed checkpoint commits to
    (check it offline with ``dosewise ledger verify-receipt``)."""

    receipt: str
    event: dict[str, Any]
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]
    checkpoint: CheckpointOut
    consistency: list[dict[str, Any]]
    signer: dict[str, Any] | None = None


class ConsistencyOut(BaseModel):
    old: int
    new: int
    proof: list[str] = Field(description="Hashes proving the tree of the first `old` events is a prefix of the "
                                         "tree of the first `new` (RFC 9162).")
