"""The ledger: head, verify, events paged by sequence, export."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from dosewise.app import Desk
from dosewise.ledger.events import format_time
from dosewise.ledger.identities import Identity
from dosewise.service.auth import READERS, Who, allow, desk_of
from dosewise.service.schemas import ID_PATTERN, EventPage, HeadOut, VerifyOut, event_out

router = APIRouter(prefix="/ledger", tags=["ledger"])
DeskDep = Annotated[Desk, Depends(desk_of)]


@router.get("/head", response_model=HeadOut, summary="The last event's sequence number and hash")
def head(desk: DeskDep, who: Who) -> HeadOut:
    ev = desk.head()
    if ev is None:
        return HeadOut(seq=0, hash=None, recorded_at=None)
    return HeadOut(seq=ev.seq, hash=ev.hash, recorded_at=format_time(ev.recorded_at))


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
