"""The ledger: head, verify, events paged by sequence, export, checkpoints, receipts and proofs."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from dosewise.app import Desk
from dosewise.errors import InputError, LedgerError, NotFoundError
from dosewise.ledger.events import format_time
from dosewise.ledger.identities import Identity
from dosewise.ledger.store import Store
from dosewise.service.auth import READERS, Who, allow, desk_of, in_worker
from dosewise.service.problems import ApiError
from dosewise.service.render import json_answer
from dosewise.service.schemas import (
    ID_PATTERN,
    CheckpointOut,
    ConsistencyOut,
    EventPage,
    HeadOut,
    ReceiptOut,
    VerifyOut,
    event_out,
)

router = APIRouter(prefix="/ledger", tags=["ledger"])
DeskDep = Annotated[Desk, Depends(desk_of)]


@router.get("/head", response_model=HeadOut, summary="The last event's sequence number and hash")
async def head(request: Request, who: Who) -> Response:
    ev = await in_worker(request, request.app.state.desk.head)
    if ev is None:
        return json_answer({"seq": 0, "hash": None, "recorded_at": None}, HeadOut)
    return json_answer({"seq": ev.seq, "hash": ev.hash, "recorded_at": format_time(ev.recorded_at)}, HeadOut)


@router.get("/verify", response_model=VerifyOut, summary="Walk the hash chain; report the first bad event")
def verify(desk: DeskDep, who: Who) -> VerifyOut:
    r = desk.verify()
    return VerifyOut(ok=r.ok, checked=r.checked, head_seq=r.head_seq, head_hash=r.head_hash,
                     first_bad_seq=r.first_bad_seq, problem=r.problem)


@router.get("/events", response_model=EventPage,
            summary="Events after a sequence number (a cursor); a participant sees those about its own offers")
def events(request: Request, desk: DeskDep, who: Who,
           after: Annotated[int, Query(ge=0, le=2**62)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           round_id: Annotated[str | None, Query(alias="round", pattern=ID_PATTERN)] = None) -> EventPage:
    limit = min(limit, request.app.state.settings.page_limit)
    found = desk.events(after=after, limit=limit + 1, round_id=round_id,
                        participant=who.participant if who.role == "participant" else None)
    page = found[:limit]
    return EventPage(items=[event_out(e) for e in page], next_cursor=page[-1].seq if len(found) > limit else None)


@router.get("/export", summary="Every event with its hashes, as JSON Lines or CSV",
            response_class=FileResponse,
            responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}})
def export(desk: DeskDep, who: Annotated[Identity, Depends(allow(*READERS))],
           format: Literal["jsonl", "csv"] = "jsonl") -> FileResponse:
    tmp = Path(tempfile.mkdtemp(prefix="dosewise-export-")) / f"ledger.{format}"
    desk.export(tmp, format)

    def _cleanup() -> None:
        tmp.unlink(missing_ok=True)
        tmp.parent.rmdir()

    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return FileResponse(tmp, media_type=media, filename=tmp.name, background=BackgroundTask(_cleanup))


_CHECKPOINTING = threading.Lock()  # receipts asked at once share one new checkpoint


def _store(desk: Desk) -> Store:
    """The ledger's own store (under the service's group commit)."""
    store: Store = getattr(desk.store, "store", desk.store)
    return store


def _covering(request: Request, store: Store, seq: int) -> None:
    """Make sure a signed checkpoint covers event ``seq``: with the server's ledger key, one is written
    of the ledger as it stands; without, the receipt waits for the operator's next checkpoint."""
    from dosewise.ledger.checkpoints import checkpoint, latest_covering

    try:
        latest_covering(store, seq)
        return
    except LedgerError:
        pass
    key = request.app.state.settings.ledger_key
    if key is None:
        raise ApiError(409, f"no checkpoint covers event {seq} yet; ask again after the ledger's next checkpoint "
                            "(`dosewise ledger checkpoint`)", {"Retry-After": "60"})
    with _CHECKPOINTING:
        try:
            latest_covering(store, seq)
        except LedgerError:
            checkpoint(store, key)


@router.get("/receipts/{seq}", response_model=ReceiptOut,
            summary="An event's receipt: its inclusion proof against the latest signed checkpoint covering it")
def receipt(seq: Annotated[int, PathParam(ge=1, le=2**62, description="The event's sequence number.")],
            request: Request, desk: DeskDep, who: Who) -> ReceiptOut:
    from dosewise.ledger.audit import find_event, make_receipt

    store = _store(desk)
    try:
        ev = find_event(store, seq)
    except InputError:
        raise NotFoundError("no event with this seq", field="seq", value=seq) from None
    if who.role == "participant" and ev.participant != who.participant:
        raise ApiError(403, f"a participant key for {who.participant} sees only the events about its own offers")
    _covering(request, store, seq)
    return ReceiptOut.model_validate(make_receipt(store, seq))


@router.get("/checkpoints/latest", response_model=CheckpointOut, summary="The latest signed checkpoint stored")
def latest_checkpoint(desk: DeskDep, who: Who) -> CheckpointOut:
    from dosewise.ledger.checkpoints import Checkpoint, stored_checkpoints

    found = [cp for _, cp in stored_checkpoints(_store(desk)) if isinstance(cp, Checkpoint)]
    if not found:
        raise NotFoundError("the ledger has no checkpoint yet; write one with `dosewise ledger checkpoint`",
                            field="checkpoint")
    return CheckpointOut.model_validate(found[-1].to_json())


@router.get("/proofs/consistency", response_model=ConsistencyOut,
            summary="Proof that the ledger of `old` events is a prefix of the ledger of `new` events")
def consistency(desk: DeskDep, who: Who, old: Annotated[int, Query(ge=1, le=2**62)],
                new: Annotated[int, Query(ge=1, le=2**62)]) -> ConsistencyOut:
    from dosewise.ledger.tree import consistency_proof

    head = desk.head()
    size = head.seq if head is not None else 0
    if not old <= new <= size:
        raise InputError(f"need 1 <= old <= new <= {size} (the ledger's size)", field="new" if new > size else "old",
                         value=new if new > size else old)
    return ConsistencyOut(old=old, new=new, proof=[p.hex() for p in consistency_proof(_store(desk), old, new)])
