"""The application factory: ``create_app(settings)`` builds the FastAPI app over one :class:`~dosewise.app.Desk`.

``uvicorn dosewise.service.app:app_from_env --factory`` builds it from ``DOSEWISE_*`` variables
(what ``dosewise serve`` runs, once per worker process). The docs page (``/docs``, Swagger UI)
and ``/redoc`` load their scripts from the ``fastapi-offline`` package, never from a CDN, so they
work without internet.
"""

from __future__ import annotations

import gc
import inspect
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.routing import BaseRoute

from dosewise import __version__
from dosewise.app import Desk
from dosewise.service.hot import HotAnswers
from dosewise.service.problems import PROBLEM_RESPONSES, Problem, install
from dosewise.service.settings import Settings
from dosewise.web import mount_web

__all__ = ["app_from_env", "create_app"]

DESCRIPTION = """Allocation rounds on an append-only, hash-chained ledger, each party acting in its own role.

Authenticate with `Authorization: Bearer <key>` (keys are made by `dosewise keys create`). Roles:
`admin` (keys, and what a coordinator does), `coordinator` (proposes and advances rounds, ships),
`reviewer` (approves a proposed round: never one its own identity proposed), `participant` (sees and
answers only its own offers), `donor` and `observer` (read everything, write nothing).
Every event records its actor as `role:participant-or-name:key-id`. Errors are RFC 9457 problem details.
A POST with an `Idempotency-Key` header records once; a retry returns the first answer.
"""


def create_app(settings: Settings | None = None, *, desk: Desk | None = None) -> FastAPI:
    """The service over the ledger ``settings.db`` (or over ``desk``, kept open by the caller)."""
    from dosewise.service.events import router as events_router
    from dosewise.service.routes import compute, keys, ledger, offers, rounds

    settings = settings or Settings()
    owned = desk is None
    the_desk = desk if desk is not None else Desk.open(settings.db, create=True, actor="service",
                                                            group_commit=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # requests run in threads: as many as may answer at once, so their appends share group commits
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # the writer threads of this serving run (the app may be served more than once, e.g. in tests)
        app.state.writers.shutdown(wait=False)
        writers = app.state.writers = _writers(settings)
        # what start-up built (modules, routes, the ledger's caches) lives as long as the process: moved out
        # of the collector's generations, a full collection under load no longer walks it (shorter pauses)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            writers.shutdown(wait=True)
            if owned:
                the_desk.close()

    app = FastAPIOffline(title="dosewise", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         responses=PROBLEM_RESPONSES, **_NO_TELEMETRY)
    app.state.settings = settings
    app.state.desk = the_desk
    app.state.writers = _writers(settings)  # replaced by the lifespan's own while the app is served
    app.state.compare_slots = threading.BoundedSemaphore(settings.compare_slots)
    app.state.round_status = {}  # round id -> (last seq applied, status JSON): see routes.rounds
    app.state.short_answered = 0  # answers served by the short path (see dosewise.service.hot)
    install(app)
    app.add_middleware(HotAnswers, service=app)
    for module in (keys, rounds, offers, ledger, compute):
        app.include_router(module.router)
    app.include_router(events_router)
    mount_web(app, settings)
    app.state.routes_as_declared = list(app.router.routes)  # the OpenAPI document lists them in this order
    _problem_schema(app, documented=app.state.routes_as_declared)
    _busiest_first(app, (offers.router, ledger.router, rounds.router))
    return app


_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})
"""The service sets up no OpenTelemetry: with the framework's own instrumentation switched off, a
request no longer asks the telemetry providers (environment variables included) whether one was."""


def _writers(settings: Settings) -> ThreadPoolExecutor:
    """Threads for the answer routes' ledger calls: as many as may answer at once, so their appends
    share group commits (see :func:`dosewise.service.auth.in_worker`)."""
    return ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="dosewise-writer")


def _problem_schema(app: FastAPI, documented: list[BaseRoute]) -> None:
    """Put the Problem schema into the OpenAPI components (the error answers refer to it); the paths
    are listed in the order the routes are ``documented`` (as declared), whatever order they are
    matched in."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version, summary=app.summary,
                description=app.description, terms_of_service=app.terms_of_service, contact=app.contact,
                license_info=app.license_info, routes=documented, webhooks=app.webhooks.routes,
                tags=app.openapi_tags, servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
                external_docs=app.openapi_external_docs)
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _busiest_first(app: FastAPI, routers: tuple[APIRouter, ...]) -> None:
    """Match the routes of ``routers`` (answers, ledger head, round status) before all others.

    The framework tries an app's routes in order, and each included router's routes twice (to
    match, then to handle), so a request for the last router walked every route of the others
    first. The routers' prefixes (``/offers``, ``/ledger``, ``/rounds``) are not the start of any
    other route's path, so no request is matched differently: only sooner.
    """
    first = [r for router in routers for r in app.router.routes
             if getattr(r, "original_router", None) is router]
    assert len(first) == len(routers), "each busiest router is included once"
    app.router.routes[:] = first + [r for r in app.router.routes if all(r is not f for f in first)]


def app_from_env() -> FastAPI:
    """The app from ``DOSEWISE_*`` environment variables (uvicorn's ``--factory`` entry point)."""
    return create_app(Settings())
