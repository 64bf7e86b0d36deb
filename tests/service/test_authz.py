"""Authorisation as a matrix: every route × every identity, on SQLite and PostgreSQL.

Each case states the expected status; every refused write (401 or 403) must leave the ledger
head where it was. A participant acting on another participant's offer, and a reviewer whose
identity proposed the round, are identities of their own in the matrix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import IDENTITIES, SCENARIO, Ledger, fresh_database, make_ledger

from dosewise import app as api
from dosewise.app import Desk
from dosewise.ledger.audit import verify_receipt
from dosewise.ledger.checkpoints import checkpoint
from dosewise.ledger.keys import generate
from dosewise.service.app import create_app
from dosewise.service.settings import Settings

LABELS = [*IDENTITIES, "anonymous", "revoked"]
EVERYONE = set(IDENTITIES)
READERS = EVERYONE - {"participant", "other-participant"}
OPERATORS = {"admin", "coordinator"}


@dataclass
class World:
    ledger: Ledger
    desk: Desk
    client: TestClient
    revoked_token: str

    def fresh_round(self, *, proposed: bool = False) -> str:
        rid = "F-" + uuid.uuid4().hex[:8]
        sc = api.load_text(SCENARIO)
        if proposed:
            self.desk.propose_round(sc, identity="carla", actor="coordinator:carla:test", round_id=rid)
        else:
            self.desk.open_round(sc, round_id=rid)
        return rid


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          shared_data: Path) -> Iterator[World]:
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("authz") / "ledger.db")
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"))
    ledger = make_ledger(url)
    desk = Desk.open(url)
    _, revoked = desk.create_key("observer", name="gone")
    desk.revoke_key(revoked.split("_")[1])
    sc = api.load_text(SCENARIO)
    desk.propose_round(sc, identity="carla", actor="coordinator:carla:test", round_id="T1")
    desk.approve_round("T1", identity="rita", actor="reviewer:rita:test")
    desk.propose_round(sc, identity="carla", actor="coordinator:carla:test", round_id="P2")
    key = tmp_path_factory.mktemp("ledger-key") / "ledger.key"
    generate(key)
    checkpoint(desk.store, key)
    settings = Settings(db=url, who=shared_data / "surveillance" / "WHO-COVID-19-global-data.csv", ledger_key=key)
    with TestClient(create_app(settings, desk=desk)) as client:
        yield World(ledger, desk, client, revoked)
    desk.close()


Request = tuple[str, str, dict[str, Any] | None]
DECLINE = {"reason": "efficacy_concerns", "note": "doses should go elsewhere", "wish": "severely affected countries"}
PRK_OFFER = "T1:CV:PRK:0"


def _propose(w: World, label: str) -> Request:
    return "POST", "/rounds", {"scenario": SCENARIO, "round_id": "N-" + uuid.uuid4().hex[:8]}


def _approve(w: World, label: str) -> Request:
    rid = w.fresh_round(proposed=True) if label in ("reviewer", "reviewer-carla") else "P2"
    return "POST", f"/rounds/{rid}/approve", None


def _advance(w: World, label: str) -> Request:
    rid = w.fresh_round() if label in OPERATORS else "T1"
    return "POST", f"/rounds/{rid}/advance", {"to": "2021-09-10"}


def _answer(action: str) -> Callable[[World, str], Request]:
    def build(w: World, label: str) -> Request:
        oid = f"{w.fresh_round()}:CV:PRK:0" if label == "participant" else PRK_OFFER
        return "POST", f"/offers/{oid}/{action}", DECLINE if action == "decline" else {}
    return build


def _ship(w: World, label: str) -> Request:
    oid = PRK_OFFER
    if label in OPERATORS:
        oid = f"{w.fresh_round()}:CV:PRK:0"
        w.desk.respond(oid, "accept", actor="participant:PRK:test")
    return "POST", f"/offers/{oid}/ship", {"on": "2021-09-20"}


def _accepted(w: World) -> str:
    """PRK's offer in a fresh round, accepted by PRK."""
    oid = f"{w.fresh_round()}:CV:PRK:0"
    w.desk.respond(oid, "accept", actor="participant:PRK:test")
    return oid


def _partial(w: World, label: str) -> Request:
    oid = f"{w.fresh_round()}:CV:PRK:0" if label == "participant" else PRK_OFFER
    return "POST", f"/offers/{oid}/accept", {"doses": 1000, "note": "the rest back to the pool"}


def _transfer(w: World, label: str) -> Request:
    oid = _accepted(w) if label in ("participant", "other-participant") else PRK_OFFER
    return "POST", f"/offers/{oid}/transfer", {"to": "KEN", "doses": 1000}


def _transfer_answer(action: str) -> Callable[[World, str], Request]:
    def build(w: World, label: str) -> Request:
        oid = _accepted(w)
        ev = w.desk.transfer(oid, "KEN", 1000, actor="participant:PRK:test")
        return "POST", f"/rounds/{ev.round_id}/transfers/{ev.payload['transfer']}/{action}", {}
    return build


def _donate(w: World, label: str) -> Request:
    lot = {"id": "D-" + uuid.uuid4().hex[:8], "product": "CoronaVac", "doses": 100_000, "available": "2021-09-01",
           "expiry": "2022-02-28", "donor": "dora", "channel": "dose-sharing",
           "earmarks": {"recipients": ["KEN", "UGA"]}}
    return "POST", "/rounds/T1/donations", {"lot": lot}


def _receipt(w: World, label: str) -> Request:
    ev = next(iter(w.desk.store.read(offer_id=PRK_OFFER)))  # the offer to PRK: an event about PRK
    return "GET", f"/ledger/receipts/{ev.seq}", None


def _revoke(w: World, label: str) -> Request:
    ident, _ = w.desk.create_key("observer", name="to-revoke")
    return "POST", f"/keys/{ident.key_id}/revoke", None


def _get(path: str) -> Callable[[World, str], Request]:
    return lambda w, label: ("GET", path, None)


# route: (request builder, identities allowed, status when allowed, writes?)
ROUTES: dict[str, tuple[Callable[[World, str], Request], set[str], int, bool]] = {
    "GET /me": (_get("/me"), EVERYONE, 200, False),
    "GET /keys": (_get("/keys"), {"admin"}, 200, False),
    "POST /keys/{id}/revoke": (_revoke, {"admin"}, 200, True),
    "GET /rounds": (_get("/rounds"), EVERYONE, 200, False),
    "POST /rounds": (_propose, OPERATORS, 201, True),
    "GET /rounds/{id}": (_get("/rounds/T1"), EVERYONE, 200, False),
    "GET /rounds/{id}/proposal": (_get("/rounds/P2/proposal"), READERS, 200, False),
    "POST /rounds/{id}/approve": (_approve, {"reviewer"}, 200, True),
    "POST /rounds/{id}/advance": (_advance, OPERATORS, 200, True),
    "GET /rounds/{id}/offers": (_get("/rounds/T1/offers"), EVERYONE, 200, False),
    "GET /rounds/{id}/allocation": (_get("/rounds/T1/allocation"), READERS, 200, False),
    "GET /rounds/{id}/need": (_get("/rounds/T1/need"), EVERYONE, 200, False),
    "GET /offers/{id}": (_get(f"/offers/{PRK_OFFER}"), EVERYONE - {"other-participant"}, 200, False),
    "POST /offers/{id}/accept": (_answer("accept"), {"participant"}, 200, True),
    "POST /offers/{id}/decline": (_answer("decline"), {"participant"}, 200, True),
    "POST /offers/{id}/ship": (_ship, OPERATORS, 200, True),
    "POST /offers/{id}/accept (part)": (_partial, {"participant"}, 200, True),
    "POST /offers/{id}/transfer": (_transfer, {"participant"}, 201, True),
    "GET /rounds/{id}/transfers": (_get("/rounds/T1/transfers"), EVERYONE, 200, False),
    "POST /rounds/{id}/transfers/{id}/accept": (_transfer_answer("accept"), {"other-participant"}, 200, True),
    "POST /rounds/{id}/transfers/{id}/refuse": (_transfer_answer("refuse"), {"other-participant"}, 200, True),
    "POST /rounds/{id}/donations": (_donate, {"admin", "coordinator", "donor"}, 201, True),
    "GET /ledger/receipts/{id}": (_receipt, EVERYONE - {"other-participant"}, 200, False),
    "GET /ledger/checkpoints/latest": (_get("/ledger/checkpoints/latest"), EVERYONE, 200, False),
    "GET /ledger/proofs/consistency": (_get("/ledger/proofs/consistency?old=2&new=5"), EVERYONE, 200, False),
    "GET /ledger/head": (_get("/ledger/head"), EVERYONE, 200, False),
    "GET /ledger/verify": (_get("/ledger/verify"), EVERYONE, 200, False),
    "GET /ledger/events": (_get("/ledger/events?limit=20"), EVERYONE, 200, False),
    "GET /ledger/export": (_get("/ledger/export"), READERS, 200, False),
    "POST /allocate": (lambda w, label: ("POST", "/allocate", {"scenario": SCENARIO}), EVERYONE, 200, False),
    "POST /compare": (lambda w, label: ("POST", "/compare", {"scenario": SCENARIO, "policies": ["covax-pro-rata"]}),
                      READERS, 200, False),
}


def expected(route: str, label: str) -> int:
    _, allowed, ok, _ = ROUTES[route]
    if label in ("anonymous", "revoked"):
        return 401
    return ok if label in allowed else 403


def test_matrix_covers_every_route(world: World) -> None:
    """Every route of the OpenAPI document is in the matrix (the event stream is tested on a real server)."""
    schema = world.client.get("/openapi.json").json()
    documented = {f"{m.upper()} {p}" for p, ops in schema["paths"].items() for m in ops if p != "/events"}
    in_matrix = {r.replace("{id}", "{x}").removesuffix(" (part)") for r in ROUTES}
    normalised = set()
    for d in documented:
        method, path = d.split(" ")
        normalised.add(method + " " + "/".join("{x}" if s.startswith("{") else s for s in path.split("/")))
    assert normalised == in_matrix


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_route_by_identity(world: World, route: str, label: str) -> None:
    build, _, _, writes = ROUTES[route]
    method, path, body = build(world, label)
    headers = {}
    if label == "revoked":
        headers = {"Authorization": f"Bearer {world.revoked_token}"}
    elif label != "anonymous":
        headers = world.ledger.auth(label)
    before = world.desk.head()
    response = world.client.request(method, path, json=body, headers=headers)
    want = expected(route, label)
    assert response.status_code == want, (route, label, response.text[:300])
    if want >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == want and problem["detail"]
        if writes:
            after = world.desk.head()
            assert after is not None and before is not None and after.seq == before.seq, "a refused write recorded"
    elif writes:
        after = world.desk.head()
        assert after is not None and before is not None and after.seq > before.seq
        receipts = _receipts(response.json())
        assert receipts, "every write links to its receipt"
        receipt = world.client.get(receipts[0], headers=world.ledger.auth("observer")).json()
        assert not verify_receipt(receipt)
        assert receipt["event"]["actor"] == f"{IDENTITIES[label][0]}:{IDENTITIES[label][2] or IDENTITIES[label][1]}" \
                                            f":{world.ledger.key_ids[label]}", "the actor is the caller's key"


def _receipts(body: Any) -> list[str]:
    """The receipt links anywhere in an answer."""
    if isinstance(body, dict):
        found = [body["receipt"]] if isinstance(body.get("receipt"), str) else []
        return found + [r for v in body.values() if isinstance(v, dict | list) for r in _receipts(v)]
    if isinstance(body, list):
        return [r for v in body for r in _receipts(v)]
    return []


def test_participant_lists_only_its_own(world: World) -> None:
    own = world.client.get("/rounds/T1/offers", headers=world.ledger.auth("participant")).json()["items"]
    assert own and {o["participant"] for o in own} == {"PRK"}
    everyone = world.client.get("/rounds/T1/offers", headers=world.ledger.auth("observer")).json()["items"]
    assert len({o["participant"] for o in everyone}) > 1
    refused = world.client.get("/rounds/T1/offers?participant=KEN", headers=world.ledger.auth("participant"))
    assert refused.status_code == 403
    events = world.client.get("/ledger/events?limit=1000", headers=world.ledger.auth("participant")).json()["items"]
    assert events and {e["participant"] for e in events} == {"PRK"}
