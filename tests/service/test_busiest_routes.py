"""The busiest routes (answers, ledger head, round status) answer what their declared models say, are
matched as before, only sooner, and a round's status is never older than the events recorded before
it was asked for, whichever process recorded them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.routing import Match
from tests.service.conftest import Ledger, open_round

from dosewise.app import Desk
from dosewise.service.app import create_app
from dosewise.service.render import json_answer
from dosewise.service.schemas import EventOut, HeadOut, RoundOut, event_out, round_out
from dosewise.service.settings import Settings

DECLINE = {"reason": "efficacy_concerns", "note": "doses to where they are needed — «severely» affected",
           "wish": "severely affected countries"}


@pytest.fixture
def served(served: tuple[Ledger, TestClient, Desk]) -> tuple[Ledger, TestClient, Desk]:
    """The app with round T1 proposed and approved."""
    ledger, client, _ = served
    open_round(ledger, client)
    return served


def _offer(client: TestClient, ledger: Ledger, label: str) -> str:
    items = client.get("/rounds/T1/offers?status=offered", headers=ledger.auth(label)).json()["items"]
    return str(items[0]["offer"])


def _as_model(body: bytes, model: type[BaseModel]) -> dict[str, Any]:
    """The answer as its declared model reads it, and as that model writes it back."""
    parsed = json.loads(body)
    assert model.model_validate_json(body).model_dump(mode="json", by_alias=True) == parsed
    return dict(parsed)


def test_answers_are_what_their_models_say(served: tuple[Ledger, TestClient, Desk]) -> None:
    ledger, client, desk = served
    r = client.post(f"/offers/{_offer(client, ledger, 'participant')}/decline", json=DECLINE,
                    headers={**ledger.auth("participant"), "Idempotency-Key": "d-1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    declined = _as_model(r.content, EventOut)
    recorded = desk.events(after=declined["seq"] - 1, limit=1)[0]
    assert declined == event_out(recorded).model_dump(mode="json")
    assert declined["payload"]["note"] == DECLINE["note"]  # non-ASCII text kept as written

    r = client.post(f"/offers/{_offer(client, ledger, 'other-participant')}/accept",
                    headers=ledger.auth("other-participant"))
    accepted = _as_model(r.content, EventOut)
    assert accepted["type"] == "offer.accepted" and accepted["participant"] == "KEN"

    head = _as_model(client.get("/ledger/head", headers=ledger.auth("observer")).content, HeadOut)
    assert (head["seq"], head["hash"]) == (accepted["seq"], accepted["hash"])

    status = _as_model(client.get("/rounds/T1", headers=ledger.auth("observer")).content, RoundOut)
    assert status == round_out(desk.view("T1")).model_dump(mode="json")
    assert status["offers"]["declined"] == 1 and status["offers"]["accepted"] == 1


def test_json_answer_falls_back_to_the_model_for_what_orjson_cannot_write() -> None:
    class Big(BaseModel):
        n: int

    r = json_answer({"n": 2**70}, Big)
    assert json.loads(r.body) == {"n": 2**70} and r.media_type == "application/json"


def test_round_status_is_never_older_than_what_was_recorded_before(served: tuple[Ledger, TestClient, Desk],
                                                                     ledger_url: str) -> None:
    ledger, client, desk = served
    obs = ledger.auth("observer")
    first = client.get("/rounds/T1", headers=obs)
    assert client.get("/rounds/T1", headers=obs).content == first.content  # nothing recorded in between
    # another process answers: the next poll shows it, though this server recorded nothing
    offer = _offer(client, ledger, "participant")
    with Desk.open(ledger_url) as other:
        other.respond(offer, "decline", reason="efficacy_concerns")
    after = client.get("/rounds/T1", headers=obs).json()
    assert after["offers"]["declined"] == first.json()["offers"].get("declined", 0) + 1
    assert after == round_out(desk.view("T1")).model_dump(mode="json")
    # and an answer through the server itself
    ken = ledger.auth("other-participant")
    assert client.post(f"/offers/{_offer(client, ledger, 'other-participant')}/accept", headers=ken).status_code == 200
    assert client.get("/rounds/T1", headers=obs).json()["offers"]["accepted"] == 1
    assert client.get("/rounds/NOPE", headers=obs).status_code == 404


def _sample_path(path: str) -> str:
    """A concrete path for a route template (each parameter replaced by a value its pattern takes)."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        return {"seq": "7", "key_id": "0123456789ab", "transfer_id": "T1:CV:KEN:0:T1"}.get(
            name.split(":")[0], "T1" if "round" in name else "T1:CV:KEN:0")
    return re.sub(r"{([^}]+)}", value, path)


def _resolve(app: FastAPI, routes: list[Any], method: str, path: str) -> tuple[str, Any]:
    """Which route the app's top-level router picks for a request, walking ``routes`` in order."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
                             "query_string": b"", "app": app}
    partial = None
    for route in routes:
        match, child = route.matches(dict(scope))
        if match == Match.FULL:
            return "full", child.get("endpoint") or child.get("route") or route
        if match == Match.PARTIAL and partial is None:
            partial = child.get("endpoint") or route
    return ("partial", partial) if partial is not None else ("none", None)


def test_busiest_routes_matched_first_and_nothing_else_changes(tmp_path: Path) -> None:
    app = create_app(Settings(db=str(tmp_path / "l.db")))
    documented = list(app.router.routes)
    prefixes = [getattr(getattr(r, "original_router", None), "prefix", None) for r in documented[:3]]
    assert prefixes == ["/offers", "/ledger", "/rounds"]
    declared = app.state.routes_as_declared
    assert declared[0].path == "/openapi.json" and len(declared) == len(documented)
    templates = {(m, f"{router.prefix}{route.path}")
                 for r in documented if (router := getattr(r, "original_router", None)) is not None
                 for route in router.routes if isinstance(route, APIRoute) for m in route.methods}
    assert len(templates) > 30
    for method, template in sorted(templates):
        for m in (method, "DELETE"):  # the route itself, and a method no route takes (405 or 404)
            path = _sample_path(template)
            assert _resolve(app, documented, m, path) == _resolve(app, declared, m, path), (m, path)
    # the document lists the paths as declared (identities first), whatever the matching order
    paths = list(app.openapi()["paths"])
    assert paths[0] == "/me" and paths.index("/rounds") < paths.index("/offers/{offer_id}/accept") \
        < paths.index("/ledger/head")
    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer",
                                      "description": "An API key made by `dosewise keys create`."}}


def test_one_authentication_dependency_per_route_and_its_answers(served: tuple[Ledger, TestClient, Desk]) -> None:
    ledger, client, _ = served
    for path in ("/ledger/head", "/rounds/T1"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer "}).status_code == 401
        bad = client.get(path, headers={"Authorization": "Bearer dw_0123456789ab_nope"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        assert bad.headers["content-type"] == "application/problem+json"
    r = client.post(f"/offers/{_offer(client, ledger, 'participant')}/accept", headers=ledger.auth("observer"))
    assert r.status_code == 403 and "the observer role may not do this (allowed: participant)" in r.json()["detail"]
    for route in client.app.routes:  # type: ignore[attr-defined]
        for sub in getattr(getattr(route, "original_router", None), "routes", []):
            if isinstance(sub, APIRoute) and sub.path in ("/head", "/{round_id}", "/{offer_id}/accept"):
                assert len(sub.dependant.dependencies) == 1, sub.path
