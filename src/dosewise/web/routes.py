"""The dashboard's pages: server-rendered Jinja2 templates (autoescaped), enhanced by htmx.

Every page reads the caller's identity from its session cookie and shows what its role may see:
readers (admin, coordinator, reviewer, donor, observer) the secretariat board and the ledger;
a participant only its own offers, allocation and receipts. Writes are forms (a participant's
answers, an operator's advance), each with the cookie's CSRF token and a one-time idempotency
nonce, so a double submit records once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import secrets
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from dosewise import app as api
from dosewise.app import Desk
from dosewise.errors import DosewiseError, NotFoundError
from dosewise.ledger.events import format_time
from dosewise.ledger.identities import Identity
from dosewise.vocabulary import DECLINE_REASONS
from dosewise.web import charts, views
from dosewise.web.auth import COOKIE, READERS, SESSION_SECONDS, PageError, Sessions
from dosewise.web.geo import ATLAS_PATH

__all__ = ["ROUTE_PREFIX", "make_router", "static_dir", "templates_env"]

ROUTE_PREFIX = "/web"
OPERATORS = ("admin", "coordinator")
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


# -- templates ------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    """A cell of a computed table: integers with separators, floats to ``digits`` significant
    figures, missing values as a dash (never a zero)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) < 1e-6:  # rounding noise of a solver, not a figure
            return "0"
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return str(value)


def _doses(value: Any) -> str:
    return "—" if value is None else f"{int(value):,} doses"


def _per100(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.2f} per 100 people"


def templates_env() -> Environment:
    env = Environment(loader=PackageLoader("dosewise.web", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, doses=_doses, per100=_per100, reason=lambda r: str(r).replace("_", " "))
    return env


# -- caches ------------------------------------------------------------------------------------


class Cache:
    """Slow results (need ranking, policy comparison) kept per key; one computation per key at a time."""

    def __init__(self, size: int = 16) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._values: dict[str, Any] = {}
        self._size = size

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = compute()
            with self._lock:
                if len(self._values) >= self._size:
                    self._values.pop(next(iter(self._values)))
                self._values[key] = value
            return value


# -- the router --------------------------------------------------------------------------------------


def make_router(sessions: Sessions, who_file: Callable[[], Path | None], *, sse_poll: float = 0.25) -> APIRouter:
    """The dashboard's routes (under :data:`ROUTE_PREFIX`)."""
    env = templates_env()
    cache = Cache()
    router = APIRouter(prefix=ROUTE_PREFIX, include_in_schema=False)

    def desk_of(request: Request) -> Desk:
        desk: Desk = request.app.state.desk
        return desk

    def page(request: Request, name: str, ident: Identity | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        cookie = request.cookies.get(COOKIE)
        desk = desk_of(request)
        ctx.setdefault("nonce", secrets.token_hex(12))
        head = desk.head()
        html = env.get_template(name).render(
            request=request, me=ident, prefix=ROUTE_PREFIX, static=f"{ROUTE_PREFIX}/static",
            csrf=sessions.csrf(cookie) if cookie else "", head=head, readers=READERS, operators=OPERATORS,
            rounds=desk.round_ids() if ident is not None and ident.role in READERS else [], **ctx)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def who(request: Request, *roles: str) -> Identity:
        ident = sessions.identity(request, desk_of(request))
        if roles and ident.role not in roles:
            raise PageError(403, f"The {ident.role} role may not see this page.")
        return ident

    def check_form(request: Request, token: str) -> None:
        if not sessions.check_csrf(request.cookies.get(COOKIE), token):
            raise PageError(403, "The form is stale or came from another site: reload the page and try again.")

    # -- login ---------------------------------------------------------------------------------
    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", None)

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, key: Annotated[str, Form(max_length=200)] = "") -> Response:
        ident = desk_of(request).keys.authenticate(key.strip())
        if ident is None:
            return page(request, "login.html", None, status=401,
                        error="That key is unknown, malformed or revoked.")
        resp = RedirectResponse(f"{ROUTE_PREFIX}/", status_code=303)
        resp.set_cookie(COOKIE, sessions.issue(ident), max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
        return resp

    @router.post("/logout")
    def logout(request: Request) -> Response:
        resp = RedirectResponse(f"{ROUTE_PREFIX}/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    # -- home ----------------------------------------------------------------------------------
    @router.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        ident = who(request)
        if ident.role == "participant":
            return RedirectResponse(f"{ROUTE_PREFIX}/my", status_code=303)
        desk = desk_of(request)
        rounds = []
        for rid in desk.round_ids():
            state = desk.view(rid)
            rounds.append({"round_id": rid, "phase": state.phase, "name": state.opened.get("name", rid),
                           "today": state.today, "statuses": views.status_rows(state)})
        return page(request, "home.html", ident, round_rows=rounds)

    # -- the secretariat board ---------------------------------------------------------------------
    @router.get("/rounds/{round_id}", response_class=HTMLResponse)
    def board(request: Request, round_id: str) -> HTMLResponse:
        ident = who(request, *READERS)
        desk = desk_of(request)
        state = _state(desk, round_id)
        supply = views.supply_rows(desk, state)
        places = views.map_rows(desk, state)
        atlas = f"{ROUTE_PREFIX}/static/{ATLAS_PATH}"
        return page(request, "board.html", ident, state=state, supply=supply,
                    places=places, expiry=views.expiry_rows(state), **_live(desk, state),
                    specs={"supply": charts.supply_chart(supply["lots"]), "map": charts.map_chart(places, atlas)})

    @router.get("/rounds/{round_id}/live", response_class=HTMLResponse)
    def board_live(request: Request, round_id: str) -> HTMLResponse:
        ident = who(request, *READERS)
        desk = desk_of(request)
        state = _state(desk, round_id)
        return page(request, "_live.html", ident, state=state, **_live(desk, state))

    def _live(desk: Desk, state: Any) -> dict[str, Any]:
        rows = views.board_rows(desk, state)
        flows = views.flows(desk, state)
        return {"board": rows, "flows": flows, "sankey": Markup(charts.sankey_svg(flows)),
                "status_spec": charts.status_chart(rows["statuses"])}

    @router.get("/rounds/{round_id}/need", response_class=HTMLResponse)
    def need(request: Request, round_id: str) -> HTMLResponse:
        ident = who(request, *READERS)
        desk = desk_of(request)
        state = _state(desk, round_id)
        source = who_file()
        if source is None:
            return page(request, "_need.html", ident, missing=True)
        day = state.today or dt.date.today()
        world = desk.world(round_id)

        def compute() -> Any:
            return api.need(world.participants, source, day).reset_index()

        frame = cache.get(f"need:{round_id}:{day}:{source}", compute)
        code = str(frame.columns[0])
        columns = [c for c in frame.columns[1:] if c != "week"]
        names = dict(zip(world.codes, world.participants["name"], strict=True))
        return page(request, "_need.html", ident, code=code, columns=columns, rows=frame.to_dict("records"), day=day,
                    source=source.name, names=names, missing=False)

    @router.get("/rounds/{round_id}/compare", response_class=HTMLResponse)
    async def compare(request: Request, round_id: str) -> HTMLResponse:
        ident = who(request, *READERS)
        desk = desk_of(request)
        state = _state(desk, round_id)

        def compute() -> Any:
            held = desk.round_allocation(round_id, include_open=True)
            return api.compare(held.scenario, who=who_file(),
                               allocations={"this round (held and on open offer)": held.allocation})

        result = await run_in_threadpool(cache.get, f"compare:{round_id}:{state.last_seq}", compute)
        source = who_file()
        notes = [n.replace(str(source), source.name) if source else n for n in result.notes]  # no server paths
        frame = result.frame.reset_index()
        frame = frame.rename(columns={frame.columns[0]: "policy"})
        rows = frame.to_dict("records")
        spec = charts.deaths_chart([{"policy": str(r["policy"]), "deaths_averted": float(r["deaths_averted"])}
                                    for r in rows if "deaths_averted" in r])
        return page(request, "_compare.html", ident, columns=list(frame.columns), rows=rows, notes=notes,
                    spec=spec, seq=state.last_seq)

    @router.post("/rounds/{round_id}/advance")
    def advance(request: Request, round_id: str, to: Annotated[dt.date, Form()],
                csrf: Annotated[str, Form()] = "", nonce: Annotated[str, Form(max_length=64)] = "") -> Response:
        ident = who(request, *OPERATORS)
        check_form(request, csrf)
        desk = desk_of(request)
        _state(desk, round_id)
        try:
            desk.advance(round_id, to, actor=ident.actor, key=f"web:{ident.key_id}:{nonce}" if nonce else None)
        except DosewiseError as exc:
            return page(request, "error.html", ident, status=422, message=str(exc))
        return RedirectResponse(f"{ROUTE_PREFIX}/rounds/{round_id}#board", status_code=303)

    # -- the ledger ------------------------------------------------------------------------------
    @router.get("/ledger", response_class=HTMLResponse)
    def ledger(request: Request) -> HTMLResponse:
        ident = who(request, *READERS)
        events = desk_of(request).log(limit=50)
        return page(request, "ledger.html", ident, events=list(reversed(events)), format_time=format_time)

    @router.get("/ledger/head", response_class=HTMLResponse)
    def head(request: Request, full: bool = False) -> HTMLResponse:
        ident = who(request)
        return page(request, "_head.html", ident, full=full)

    @router.post("/ledger/verify", response_class=HTMLResponse)
    async def verify(request: Request) -> HTMLResponse:
        ident = who(request)
        report = await run_in_threadpool(desk_of(request).verify)
        return page(request, "_verify.html", ident, report=report)

    @router.get("/ledger/export")
    def export(request: Request, format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl") -> Response:
        who(request, *READERS)
        tmp = Path(tempfile.mkdtemp(prefix="dosewise-export-")) / f"ledger.{format}"
        desk_of(request).export(tmp, format)  # type: ignore[arg-type]

        def cleanup() -> None:
            tmp.unlink(missing_ok=True)
            tmp.parent.rmdir()

        media = "application/x-ndjson" if format == "jsonl" else "text/csv"
        return FileResponse(tmp, media_type=media, filename=tmp.name, background=BackgroundTask(cleanup))

    # -- a participant -----------------------------------------------------------------------------
    @router.get("/my", response_class=HTMLResponse)
    def mine(request: Request) -> HTMLResponse:
        ident = who(request, "participant")
        return _mine(request, ident)

    def _mine(request: Request, ident: Identity, error: str | None = None, status: int = 200) -> HTMLResponse:
        desk = desk_of(request)
        code = str(ident.participant)
        offers = views.participant_offers(desk, code)
        receipts = [ev for ev in desk.events(after=0, limit=10_000, participant=code)
                    if ev.type in ("offer.accepted", "offer.declined", "offer.lapsed")]
        return page(request, "participant.html", ident, status=status, offers=offers, error=error,
                    entitlements=views.entitlement_rows(desk, code), receipts=list(reversed(receipts)),
                    reasons=DECLINE_REASONS, nonce=secrets.token_hex(12), format_time=format_time)

    @router.get("/my/offers", response_class=HTMLResponse)
    def my_offers(request: Request) -> HTMLResponse:
        ident = who(request, "participant")
        desk = desk_of(request)
        return page(request, "_offers.html", ident, offers=views.participant_offers(desk, str(ident.participant)),
                    reasons=DECLINE_REASONS, nonce=secrets.token_hex(12))

    @router.post("/offers/{offer_id}/{action}")
    def answer(request: Request, offer_id: str, action: str, csrf: Annotated[str, Form()] = "",
               nonce: Annotated[str, Form(max_length=64)] = "",
               reason: Annotated[str | None, Form(max_length=64)] = None,
               note: Annotated[str | None, Form(max_length=2000)] = None,
               wish: Annotated[str | None, Form(max_length=500)] = None,
               doses: Annotated[int | None, Form(ge=1, le=10**15)] = None) -> Response:
        ident = who(request, "participant")
        check_form(request, csrf)
        if action not in ("accept", "decline"):
            raise PageError(404, "There is no such action.")
        desk = desk_of(request)
        try:
            offer = desk.offer(offer_id)
        except NotFoundError:
            offer = None
        if offer is None or offer["participant"] != ident.participant:
            # the same answer for someone else's offer as for no offer: nothing about it is revealed
            return _mine(request, ident, error="There is no such offer among yours.", status=404)
        try:
            ev = desk.respond(offer_id, "accept" if action == "accept" else "decline",
                              reason=reason if action == "decline" else None,
                              note=(note or None), wish=(wish or None) if action == "decline" else None,
                              key=f"web:{ident.key_id}:{nonce}" if nonce else None, actor=ident.actor,
                              participant=ident.participant,
                              doses=doses if action == "accept" and doses is not None and doses < offer["doses"]
                              else None)
        except DosewiseError as exc:
            return _mine(request, ident, error=str(exc), status=409 if "already" in str(exc) else 422)
        return RedirectResponse(f"{ROUTE_PREFIX}/receipts/{ev.seq}", status_code=303)

    @router.get("/receipts/{seq}", response_class=HTMLResponse)
    def receipt(request: Request, seq: int) -> HTMLResponse:
        ident = who(request)
        desk = desk_of(request)
        found = desk.events(after=max(seq - 1, 0), limit=1,
                            participant=ident.participant if ident.role == "participant" else None)
        if not found or found[0].seq != seq:
            return page(request, "error.html", ident, status=404, message="There is no such receipt among yours.")
        return page(request, "receipt.html", ident, event=found[0], format_time=format_time)

    # -- live updates ------------------------------------------------------------------------------
    @router.get("/events")
    def events(request: Request, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> StreamingResponse:
        ident = who(request)
        desk = desk_of(request)
        last_id = request.headers.get("last-event-id", "").strip()
        start = int(last_id) if last_id.isdigit() else after
        participant = ident.participant if ident.role == "participant" else None

        async def stream() -> AsyncIterator[str]:
            last = start
            idle = 0.0
            yield "retry: 1000\n\n"
            while True:
                batch = await run_in_threadpool(desk.events, after=last, limit=200, participant=participant)
                for ev in batch:
                    data = json.dumps({"seq": ev.seq, "type": ev.type, "round": ev.round_id})
                    yield f"id: {ev.seq}\nevent: ledger\ndata: {data}\n\n"
                    last = ev.seq
                if len(batch) == 200:
                    continue
                if await request.is_disconnected():
                    return
                await asyncio.sleep(sse_poll)
                idle += sse_poll
                if idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


def _state(desk: Desk, round_id: str) -> Any:
    if round_id not in desk.round_ids():
        raise PageError(404, "There is no such round in this ledger.")
    return desk.view(round_id)


_SECURITY_HEADERS = {
    # vega compiles its expressions with Function(): 'unsafe-eval' for scripts of this origin only
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_dir() -> Path:
    return Path(str(resources.files("dosewise.web") / "static"))
