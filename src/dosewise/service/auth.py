"""Bearer API keys and the rights of each role.

Every request but the docs carries ``Authorization: Bearer dw_<key id>_<secret>``; the key is
looked up by its id and checked against its Argon2id hash (see
:mod:`dosewise.ledger.identities`). A route states the roles it admits with :func:`allow`;
a participant is further bound to its own offers by the routes themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from dosewise.app import Desk
from dosewise.ledger.identities import Identity
from dosewise.service.problems import ApiError

__all__ = ["EVERYONE", "OPERATORS", "READERS", "IdemKey", "Who", "allow", "bearer_token", "desk_of", "in_worker",
           "in_writers", "ledger_key"]

T = TypeVar("T")

EVERYONE = ("admin", "coordinator", "reviewer", "participant", "donor", "observer")
READERS = ("admin", "coordinator", "reviewer", "donor", "observer")
"""Roles that read every offer and event (participants read their own)."""
OPERATORS = ("admin", "coordinator")
"""Roles that propose and advance rounds and record shipments."""

_KEY_DESCRIPTION = "An API key made by `dosewise keys create`."


async def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


async def in_worker(request: Request, fn: Callable[[], T]) -> T:
    """Run a blocking ledger call in the app's writer threads (``app.state.writers``) and await it.

    The busiest routes (answers to offers) use it instead of a plain ``def`` route: the standard
    library's executor hands work to its threads through a C queue, where the framework's thread
    hop takes a capacity limiter and a Python-level queue and condition per request, all on the
    event loop's thread. The threads are as many as ``threads`` in the settings, so concurrent
    answers still share group commits; the call runs in a copy of the caller's context.
    """
    return await in_writers(request.app.state.writers, fn)


async def in_writers(writers: Executor, fn: Callable[[], T]) -> T:
    """Run ``fn`` in ``writers`` in a copy of the caller's context and await it (see :func:`in_worker`)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(writers, contextvars.copy_context().run, fn)


def bearer_token(header: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header value (the scheme in any case), or None."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


class _Key(HTTPBearer):
    """The caller's identity from its bearer key, admitted only in some roles: one dependency per route.

    It is FastAPI's ``HTTPBearer`` security scheme itself (same name and description in the OpenAPI
    document), so a route solves one dependency for authentication and rights, not a chain of
    three. A key this process has checked is recognised on the event loop; the first check of a key
    (Argon2id) and the periodic read of revocations run in a worker thread.
    """

    def __init__(self, roles: tuple[str, ...]) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=_KEY_DESCRIPTION)
        self.roles = roles

    async def __call__(self, request: Request) -> Identity:  # type: ignore[override]
        challenge = {"WWW-Authenticate": "Bearer"}
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ApiError(401, "an API key is required: send Authorization: Bearer <key>", challenge)
        desk: Desk = request.app.state.desk
        ring = desk.keys
        ident = ring.remembered(token)
        if ident is None:
            ident = await run_in_threadpool(ring.authenticate, token)
        if ident is None:
            raise ApiError(401, "the API key is unknown, malformed or revoked", challenge)
        if ident.role not in self.roles:
            raise ApiError(403, f"the {ident.role} role may not do this (allowed: {', '.join(self.roles)})")
        return ident


def allow(*roles: str) -> Callable[..., Awaitable[Identity]]:
    """A dependency admitting only the given roles (401 without a valid key, 403 for the other roles)."""
    return _Key(roles)


Who = Annotated[Identity, Depends(allow(*EVERYONE))]

IdemKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[!-~]+$",
    description="A retried POST with the same key records once and returns the first answer.")]


def ledger_key(ident: Identity, header: str | None) -> str | None:
    """The ledger idempotency key for a request's ``Idempotency-Key`` (scoped to the caller's key)."""
    return None if header is None else f"http:{ident.key_id}:{header}"
