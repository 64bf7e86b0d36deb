"""Errors as RFC 9457 problem details (``application/problem+json``), worded as the CLI words them."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from dosewise.errors import (
    ConflictError,
    DosewiseError,
    ForbiddenError,
    InputError,
    LedgerError,
    NotFoundError,
    RoundError,
    mask_secrets,
)

__all__ = ["PROBLEM", "PROBLEM_RESPONSES", "ApiError", "Problem", "install", "problem", "problem_for"]

PROBLEM = "application/problem+json"
_TOKEN = re.compile(r"(dw_[0-9a-f]{12}_)[A-Za-z0-9_-]+")
_log = logging.getLogger("dosewise.service")

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
          503: "Service Unavailable"}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


class ApiError(Exception):
    """An HTTP error raised by the service itself (authentication, rights, bounds)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": TITLES[code], "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for code in (400, 401, 403, 404, 409, 422)
}
"""The error answers every route may give, for the OpenAPI document."""


def problem(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    detail = _TOKEN.sub(r"\1***", mask_secrets(detail))
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail,
                   instance=request.url.path)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM, headers=headers)


def problem_for(request: Request, exc: DosewiseError | ApiError) -> JSONResponse:
    """The problem answer for a refusal of the ledger or the service (what the app's handlers send)."""
    if isinstance(exc, ApiError):
        return problem(request, exc.status, exc.detail, exc.headers)
    return problem(request, status_of(exc), str(exc))


def status_of(exc: DosewiseError) -> int:
    if isinstance(exc, ForbiddenError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError | RoundError):
        return 409
    if isinstance(exc, LedgerError):
        return 503
    return 422


def _validation_detail(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    loc = [str(p) for p in first.get("loc", ())]
    where = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    value = first.get("input")
    if (loc and loc[0] == "header") or isinstance(value, dict | list):
        value = None
    elif value is not None:
        value = str(value)[:200]
    return 422, str(InputError(str(first.get("msg", "invalid value")), field=where or None, value=value))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem answer."""

    @app.exception_handler(DosewiseError)
    async def _domain(request: Request, exc: DosewiseError) -> JSONResponse:
        return problem_for(request, exc)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem_for(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail = _validation_detail(exc)
        return problem(request, status, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        return problem(request, exc.status_code, detail, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem(request, 500, "internal error; the ledger is unchanged unless its head says otherwise")
