"""Answers to offers on a short path: the busiest requests, served without the framework's routing.

When every participant answers at once, almost every request is ``POST /offers/{id}/accept`` or
``POST /offers/{id}/decline``. Through FastAPI such a request walks the middleware stack, the
router (every route is tried), the dependency solver (path, header, body and key, each validated
on its own) and a thread hop of the framework's; measured under load, that machinery costs more
CPU than recording the answer in the ledger. :class:`HotAnswers` is a plain ASGI middleware that
serves these two routes itself when the request is an ordinary one:

* the caller's key is one this process has already checked (:meth:`KeyRing.remembered`) and
  belongs to a participant;
* the offer id, the ``Idempotency-Key`` header (if any) and the body are valid: no body or a JSON
  body for an acceptance, a JSON body for a decline, validated by the same models
  (:class:`~dosewise.service.schemas.AcceptIn`, :class:`~dosewise.service.schemas.DeclineIn`).

It then makes the same ledger call as the declared route (:func:`dosewise.service.routes.offers.accept`
and ``decline``) in the same writer threads, and answers with the same bytes: the event as JSON, or
for a refusal (an unknown offer, another participant's offer, a closed round …) the same problem
answer the app's error handlers give. Every other request, including every malformed one and every
first use of a key, is passed on unchanged (its body replayed) to the app, whose routes, dependencies
and error handlers answer it. The routes stay declared in the app, so the OpenAPI document, the docs
page and the fuzz tests see them; ``Settings.short_answers=False`` turns the short path off, and the
tests check that both give the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dosewise.errors import DosewiseError
from dosewise.service.auth import bearer_token, in_writers, ledger_key
from dosewise.service.problems import ApiError, problem_for
from dosewise.service.render import json_answer
from dosewise.service.schemas import OFFER_PATTERN, AcceptIn, DeclineIn, EventOut, event_dict

__all__ = ["HotAnswers"]

_PATH = re.compile(r"/offers/([^/]+)/(accept|decline)")
_OFFER = re.compile(OFFER_PATTERN)
_IDEM = re.compile(r"[!-~]{1,200}")
MAX_BODY = 64 * 1024
"""A larger body is passed on to the app (an answer's body is a few hundred bytes)."""


class _PassOn(Exception):
    """The request is not an ordinary answer: the app serves it."""


class HotAnswers:
    """ASGI middleware serving ordinary answers to offers (see the module's text); ``service`` is the
    FastAPI app whose state (desk, writer threads, settings) the answers use."""

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.fullmatch(get_route_path(scope))  # the path the routes match (root path removed)
        state = self.service.state
        if match is None or not state.settings.short_answers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the app sees it as it came
                await self.app(scope, _replay(chunks, receive, last=message, more=True), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > MAX_BODY:
                break
        try:
            if more or size > MAX_BODY:
                raise _PassOn
            call = self._call(scope, match[1], match[2], b"".join(chunks))
        except _PassOn:
            await self.app(scope, _replay(chunks, receive, last=None, more=more), send)
            return
        state.short_answered += 1
        try:
            ev = await in_writers(state.writers, call)
        except (DosewiseError, ApiError) as exc:
            await problem_for(Request(scope), exc)(scope, receive, send)
            return
        await json_answer(event_dict(ev), EventOut)(scope, receive, send)

    def _call(self, scope: Scope, offer_id: str, verb: str, body: bytes) -> Callable[[], Any]:
        """The ledger call the declared route would make, or :class:`_PassOn`."""
        auth = idem = ctype = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if auth is not None:
                    raise _PassOn
                auth = value
            elif name == b"idempotency-key":
                if idem is not None:
                    raise _PassOn
                idem = value
            elif name == b"content-type":
                if ctype is not None:
                    raise _PassOn
                ctype = value
        if auth is None or not _OFFER.fullmatch(offer_id):
            raise _PassOn
        token = bearer_token(auth.decode("latin-1"))
        if token is None:
            raise _PassOn
        desk = self.service.state.desk
        who = desk.keys.remembered(token)
        if who is None or who.role != "participant":
            raise _PassOn
        header: str | None = None
        if idem is not None:
            header = idem.decode("latin-1")
            if not _IDEM.fullmatch(header):
                raise _PassOn
        fields = _body(body, ctype, required=verb == "decline")
        key = ledger_key(who, header)
        try:
            if verb == "accept":
                a = AcceptIn.model_validate(fields) if fields is not None else None
                return lambda: desk.respond(
                    offer_id, "accept", on=a.on if a else None, key=key, actor=who.actor,
                    participant=who.participant, doses=a.doses if a else None, note=a.note if a else None)
            d = DeclineIn.model_validate(fields)
        except ValidationError:
            raise _PassOn from None
        return lambda: desk.respond(offer_id, "decline", reason=d.reason, note=d.note, wish=d.wish, on=d.on,
                                    key=key, actor=who.actor, participant=who.participant)


def _body(body: bytes, ctype: bytes | None, *, required: bool) -> Any:
    """A JSON body as a value, None for no body where none is needed, else :class:`_PassOn`."""
    if not body:
        if required:
            raise _PassOn
        return None
    if ctype is None or ctype.split(b";")[0].strip().lower() != b"application/json":
        raise _PassOn
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:  # NaN, integers beyond 64 bits, lone surrogates …: the app decides
        raise _PassOn from None
    if not isinstance(fields, dict):
        raise _PassOn
    return fields


def _replay(chunks: list[bytes], receive: Receive, *, last: Message | None,
            more: bool) -> Callable[[], Awaitable[Message]]:
    """``receive`` for the app: the body already read, then what the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more or last is not None}]
    if last is not None:
        pending.append(last)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
