"""The event stream: server-sent events, one per ledger event, the sequence number as event id.

A client that loses the connection reconnects with ``Last-Event-ID: <seq>`` (browsers do this
by themselves) and receives every event after it, nothing twice. A participant's stream holds
only the events about its own offers. Idle streams get a comment line now and then, so
proxies keep them open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dosewise.app import Desk
from dosewise.service.auth import Who, desk_of
from dosewise.service.problems import ApiError
from dosewise.service.schemas import event_out

router = APIRouter(tags=["events"])
_BATCH = 500


async def _stream(request: Request, desk: Desk, after: int, participant: str | None) -> AsyncIterator[str]:
    settings = request.app.state.settings
    last = after
    idle = 0.0
    yield "retry: 1000\n\n"
    while True:
        batch = await run_in_threadpool(desk.events, after=last, limit=_BATCH, participant=participant)
        for ev in batch:
            yield f"id: {ev.seq}\nevent: {ev.type}\ndata: {event_out(ev).model_dump_json()}\n\n"
            last = ev.seq
        if len(batch) == _BATCH:
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(settings.sse_poll_seconds)
        idle += settings.sse_poll_seconds
        if idle >= settings.sse_heartbeat_seconds:
            idle = 0.0
            yield ": keep-alive\n\n"


@router.get("/events", summary="Server-sent events: every ledger event from a sequence number on",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "A stream of `id: <seq>`, `event: <type>`, `data: <event JSON>`."}})
def events(request: Request, desk: Annotated[Desk, Depends(desk_of)], who: Who,
           after: Annotated[int | None, Query(ge=0, le=2**62, description="Start after this seq.")] = None,
           last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=30)] = None,
           ) -> StreamingResponse:
    start = after
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise ApiError(400, "Last-Event-ID must be a ledger sequence number")
        start = int(last_event_id.strip())
    participant = who.participant if who.role == "participant" else None
    return StreamingResponse(_stream(request, desk, start or 0, participant), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
