"""The dashboard: pages for the secretariat, each participant and observers, served by the service.

:func:`mount_web` adds them to the service's FastAPI app under ``/web`` (with the vendored
scripts, styles and world atlas under ``/web/static``: no CDN, the pages work offline). Log in
with an API key at ``/web/login``; every page then shows what the key's role may see.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

__all__ = ["WebSettings", "mount_web"]


class WebSettings(Protocol):
    """What the dashboard reads from the service's settings."""

    @property
    def who(self) -> Path | None: ...


def mount_web(app: object, settings: WebSettings) -> None:
    """Serve the dashboard from ``app`` (a FastAPI app whose ``state.desk`` is the open Desk)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles

    from dosewise.app import cached_who
    from dosewise.web.auth import LoginRequired, PageError, Sessions
    from dosewise.web.routes import ROUTE_PREFIX, make_router, static_dir, templates_env

    assert isinstance(app, FastAPI)
    sessions = Sessions()
    poll = float(getattr(settings, "sse_poll_seconds", 0.25))
    app.include_router(make_router(sessions, lambda: settings.who or cached_who(), sse_poll=poll))
    app.mount(f"{ROUTE_PREFIX}/static", StaticFiles(directory=static_dir()), name="web-static")
    env = templates_env()

    async def login_required(request: Request, exc: Exception) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": f"{ROUTE_PREFIX}/login"})
        return RedirectResponse(f"{ROUTE_PREFIX}/login", status_code=303)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        html = env.get_template("error.html").render(me=None, prefix=ROUTE_PREFIX, static=f"{ROUTE_PREFIX}/static",
                                                     message=exc.message, rounds=[], head=None)
        return HTMLResponse(html, status_code=exc.status)

    from dosewise.web.geo import load_tables

    load_tables()  # before any request: the country tables are filled once, never by two threads at a time
    desk = getattr(app.state, "desk", None)
    if desk is not None:  # read the rounds and the map's reference data now, not on the first page
        threading.Thread(target=_warm, args=(desk,), name="dosewise-web-warm", daemon=True).start()
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PageError, page_error)
    if not any(getattr(r, "path", None) == "/" for r in app.routes):

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse(f"{ROUTE_PREFIX}/", status_code=307)


def _warm(desk: Any) -> None:
    """Best effort: whatever fails here fails again, and is shown, on the page that needs it
    (the desk may also be closed under this thread when the app stops at once)."""
    from dosewise.web import views

    try:
        for rid in desk.round_ids():
            views.map_rows(desk, desk.view(rid))
    except Exception:
        return
