"""Answers of the busiest routes, rendered once to JSON bytes.

A route that returns a pydantic model has FastAPI validate it against the route's response
model and serialise it; the busiest routes (answers to offers, the ledger head, a round's status)
build their answer from data already of the declared shape, so they return the JSON bytes in a
:class:`~starlette.responses.Response` directly (orjson). The route still declares its
``response_model``, so the OpenAPI document is unchanged, and the fuzz tests check these answers
against it like any other.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

__all__ = ["json_answer"]


def json_answer(content: dict[str, Any], model: type[BaseModel], status_code: int = 200) -> Response:
    """``content`` (already of ``model``'s shape) as an ``application/json`` answer.

    What orjson cannot write (an integer beyond 64 bits, a string with a lone surrogate) goes through
    ``model`` as FastAPI would send it.
    """
    try:
        body = orjson.dumps(content)
    except orjson.JSONEncodeError:
        body = model.model_validate(content).model_dump_json(by_alias=True).encode()
    return Response(body, status_code=status_code, media_type="application/json")
