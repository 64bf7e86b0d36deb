"""Stateless computations: allocation preview and policy comparison (bounded)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from dosewise import app as api
from dosewise.ledger.identities import Identity
from dosewise.service.auth import READERS, Who, allow
from dosewise.service.problems import PROBLEM, ApiError
from dosewise.service.schemas import CompareIn, PreviewIn, Rows, rows_of

router = APIRouter(tags=["compute"])
MAX_COMPARE_PARTICIPANTS = 200
"""A comparison runs the impact model per policy and participant; larger scenarios are refused."""


@router.post("/allocate", response_model=Rows, summary="Preview a policy's allocation of a scenario (records nothing)")
def allocate(body: PreviewIn, who: Who) -> Rows:
    result = api.allocate(api.load_text(body.scenario, file="request body"), policy=body.policy)
    return Rows(rows=rows_of(result.frame()))


@router.post("/compare", response_model=Rows, summary="Deaths averted by several policies on one scenario",
             responses={429: {"description": "Another comparison is running",
                              "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}})
def compare(body: CompareIn, request: Request, who: Annotated[Identity, Depends(allow(*READERS))]) -> Rows:
    sc = api.load_text(body.scenario, file="request body")
    n = len(api.allocate(sc).world.codes)
    if n > MAX_COMPARE_PARTICIPANTS:
        raise ApiError(422, f"a comparison through the service takes at most {MAX_COMPARE_PARTICIPANTS} "
                            f"participants (this scenario has {n}); run `dosewise compare` instead")
    slots: threading.BoundedSemaphore = request.app.state.compare_slots
    if not slots.acquire(blocking=False):
        raise ApiError(429, "another comparison is running; try again shortly", {"Retry-After": "5"})
    try:
        result = api.compare(sc, policies=body.policies)
    finally:
        slots.release()
    return Rows(rows=rows_of(result.frame.reset_index()), notes=result.notes)
