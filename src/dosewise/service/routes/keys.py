"""Identities: who am I, and (admins) list and revoke keys. Keys are created with `dosewise keys create`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from dosewise.app import Desk
from dosewise.ledger.identities import Identity
from dosewise.service.auth import Who, allow, desk_of
from dosewise.service.schemas import KeyOut, Me, RevokedOut

router = APIRouter(tags=["identities"])
DeskDep = Annotated[Desk, Depends(desk_of)]
Admin = Annotated[Identity, Depends(allow("admin"))]


@router.get("/me", response_model=Me, summary="The caller's identity, role and participant")
def me(who: Who) -> Me:
    return Me.model_validate(who.public())


@router.get("/keys", response_model=list[KeyOut], summary="Every API key (never its secret)")
def list_keys(desk: DeskDep, who: Admin) -> list[KeyOut]:
    return [KeyOut.model_validate(k.public()) for k in desk.keys.list()]


@router.post("/keys/{key_id}/revoke", response_model=RevokedOut, summary="Revoke an API key at once")
def revoke(key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")], desk: DeskDep, who: Admin) -> RevokedOut:
    ident = desk.revoke_key(key_id, by=who.actor)
    recorded = [ev.seq for ev in desk.store.read(types=["identity.revoked"]) if ev.payload.get("key_id") == key_id]
    return RevokedOut.model_validate({**ident.public(),
                                      "receipt": f"/ledger/receipts/{recorded[-1]}" if recorded else None})
