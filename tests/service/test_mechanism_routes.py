"""Partial acceptance, transfers, donations and receipts over HTTP: what each records, that doses
are conserved per lot, that retries record once, and that receipts check out offline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import SCENARIO, Ledger, fresh_database, make_ledger

from dosewise import app as api
from dosewise.app import Desk
from dosewise.ledger import merkle
from dosewise.ledger.audit import verify_receipt
from dosewise.ledger.checkpoints import Checkpoint
from dosewise.ledger.keys import generate
from dosewise.service.app import create_app
from dosewise.service.settings import Settings


@dataclass
class Service:
    ledger: Ledger
    desk: Desk
    client: TestClient

    def post(self, label: str, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> Any:
        headers = self.ledger.auth(label) | ({"Idempotency-Key": key} if key else {})
        return self.client.post(path, json=body, headers=headers)

    def offer(self, code: str, lot: str = "CV") -> dict[str, Any]:
        return next(o for o in self.desk.view("T1").offers.values()
                    if o["participant"] == code and o["lot"] == lot and o["status"] == "offered")


def _service(url: str, tmp: Path, *, ledger_key: bool = True) -> Iterator[Service]:
    ledger = make_ledger(url)
    desk = Desk.open(url, group_commit=True)  # as `dosewise serve` opens it
    desk.propose_round(api.load_text(SCENARIO), identity="carla", round_id="T1")
    desk.approve_round("T1", identity="rita")
    key = None
    if ledger_key:
        key = tmp / "ledger.key"
        generate(key)
    with TestClient(create_app(Settings(db=url, ledger_key=key), desk=desk)) as client:
        yield Service(ledger, desk, client)
    desk.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    url = str(tmp_path / "l.db") if request.param == "sqlite" else fresh_database(
        request.getfixturevalue("postgres_url"))
    yield from _service(url, tmp_path)


def test_partial_acceptance_returns_the_rest_to_the_pool(service: Service) -> None:
    offer = service.offer("PRK")
    pool_before = service.desk.view("T1").lots["CV"]["pool"]
    r = service.post("participant", f"/offers/{offer['offer']}/accept", {"doses": 1000, "note": "cold chain"}, "p1")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "offer.accepted_in_part" and r.json()["payload"]["doses"] == 1000
    again = service.post("participant", f"/offers/{offer['offer']}/accept", {"doses": 1000, "note": "cold chain"}, "p1")
    assert again.status_code == 200 and again.json()["seq"] == r.json()["seq"], "a retry records once"
    state = service.desk.view("T1")
    assert state.offers[offer["offer"]]["status"] == "accepted" and state.offers[offer["offer"]]["doses"] == 1000
    assert state.lots["CV"]["pool"] == pool_before + offer["doses"] - 1000
    assert state.problems() == []
    more = service.post("participant", f"/offers/{offer['offer']}/accept", {"doses": 5})
    assert more.status_code == 409  # answered already: first answer wins
    too_many = service.post("participant", f"/offers/{service.offer('PRK', 'PF')['offer']}/accept",
                            {"doses": 10**9})
    assert too_many.status_code == 422 and "more than" in too_many.json()["detail"]


def test_a_participant_cannot_answer_part_of_anothers_offer(service: Service) -> None:
    head = service.desk.head()
    r = service.post("other-participant", f"/offers/{service.offer('PRK')['offer']}/accept", {"doses": 10})
    assert r.status_code == 403 and service.desk.head() == head


def test_transfer_moves_doses_only_when_the_receiver_accepts(service: Service) -> None:
    ken = service.offer("KEN")["offer"]
    assert service.post("other-participant", f"/offers/{ken}/accept").status_code == 200
    r = service.post("other-participant", f"/offers/{ken}/transfer", {"to": "PRK", "doses": 500}, "t1")
    assert r.status_code == 201, r.text
    tid = r.json()["payload"]["transfer"]
    assert service.post("other-participant", f"/offers/{ken}/transfer", {"to": "PRK", "doses": 500},
                        "t1").json()["seq"] == r.json()["seq"]
    seen = service.client.get("/rounds/T1/transfers", headers=service.ledger.auth("participant")).json()
    assert [t["transfer"] for t in seen["transfers"]] == [tid] and seen["transfers"][0]["status"] == "proposed"
    head = service.desk.head()
    giver = service.post("other-participant", f"/rounds/T1/transfers/{tid}/accept")
    assert giver.status_code == 403 and service.desk.head() == head, "only the receiver answers"
    held_before = service.desk.view("T1").holdings()
    took = service.post("participant", f"/rounds/T1/transfers/{tid}/accept", {"note": "thank you"})
    assert took.status_code == 200 and took.json()["type"] == "transfer.accepted"
    state = service.desk.view("T1")
    assert state.transfers[tid]["status"] == "accepted" and state.problems() == []
    held = state.holdings()
    assert held["PRK"] == held_before["PRK"] + 500 and held["KEN"] == held_before["KEN"] - 500
    assert sum(held.values()) == sum(held_before.values()), "a transfer moves doses, never makes them"
    assert service.post("participant", f"/rounds/T1/transfers/{tid}/refuse").status_code == 409


def test_donor_registers_its_own_lot_with_earmarks(service: Service) -> None:
    lot = {"id": "DON1", "product": "CoronaVac", "doses": 100_000, "available": "2021-09-01",
           "expiry": "2022-02-28", "channel": "dose-sharing", "earmarks": {"recipients": ["KEN", "UGA"]}}
    r = service.post("donor", "/rounds/T1/donations", {"lot": lot}, "d1")
    assert r.status_code == 201, r.text
    event = r.json()["events"][0]
    assert event["type"] == "lot.donated" and event["payload"]["donor"] == "dora"
    assert event["payload"]["earmarks"] == {"recipients": ["KEN", "UGA"]}
    assert event["actor"] == f"donor:dora:{service.ledger.key_ids['donor']}"
    assert service.post("donor", "/rounds/T1/donations", {"lot": lot}, "d1").json()["events"][0]["seq"] == event["seq"]
    head = service.desk.head()
    other = service.post("donor", "/rounds/T1/donations", {"lot": {**lot, "id": "DON2", "donor": "someone else"}})
    assert other.status_code == 403 and service.desk.head() == head
    nowhere = service.post("donor", "/rounds/T1/donations",
                           {"lot": {**lot, "id": "DON3", "earmarks": {"recipients": ["FRA"]}}})
    assert nowhere.status_code == 422 and service.desk.head() == head
    state = service.desk.view("T1")
    assert state.lots["DON1"]["supply"] == 100_000 and state.problems() == []


def test_every_write_has_a_receipt_that_checks_out_offline(service: Service) -> None:
    offer = service.offer("PRK")["offer"]
    r = service.post("participant", f"/offers/{offer}/decline", {"reason": "efficacy_concerns",
                                                                 "wish": "severely affected countries"})
    assert r.status_code == 200
    receipt = service.client.get(r.json()["receipt"], headers=service.ledger.auth("participant"))
    assert receipt.status_code == 200, receipt.text
    body = receipt.json()
    assert body["event"]["seq"] == r.json()["seq"] and verify_receipt(body) == []
    forged = {**body, "event": {**body["event"], "payload": {**body["event"]["payload"], "reason": "other"}}}
    assert verify_receipt(forged), "a receipt whose event was changed fails"
    other = service.client.get(r.json()["receipt"], headers=service.ledger.auth("other-participant"))
    assert other.status_code == 403
    latest = service.client.get("/ledger/checkpoints/latest", headers=service.ledger.auth("observer")).json()
    cp = Checkpoint.from_json(latest)
    assert cp.tree_size >= r.json()["seq"] and cp.problems() == []
    # a later event: the old checkpoint grows into a new one, and the service proves they agree
    later = service.post("other-participant", f"/offers/{service.offer('KEN')['offer']}/accept")
    newer = Checkpoint.from_json(service.client.get(
        later.json()["receipt"], headers=service.ledger.auth("observer")).json()["checkpoint"])
    proof = service.client.get(f"/ledger/proofs/consistency?old={cp.tree_size}&new={newer.tree_size}",
                               headers=service.ledger.auth("observer")).json()["proof"]
    merkle.verify_consistency(cp.tree_size, newer.tree_size, cp.root, newer.root, [bytes.fromhex(p) for p in proof])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(cp.tree_size, newer.tree_size, newer.root, newer.root,
                                  [bytes.fromhex(p) for p in proof])


def test_without_a_ledger_key_a_receipt_waits_for_a_checkpoint(tmp_path: Path) -> None:
    for service in _service(str(tmp_path / "l.db"), tmp_path, ledger_key=False):
        r = service.post("participant", f"/offers/{service.offer('PRK')['offer']}/accept")
        waiting = service.client.get(r.json()["receipt"], headers=service.ledger.auth("participant"))
        assert waiting.status_code == 409 and "checkpoint" in waiting.json()["detail"]
        assert waiting.headers["retry-after"]
        from dosewise.ledger.checkpoints import checkpoint

        key = tmp_path / "operator.key"
        generate(key)
        checkpoint(service.desk.store.store, key)  # what `dosewise ledger checkpoint` does
        ready = service.client.get(r.json()["receipt"], headers=service.ledger.auth("participant"))
        assert ready.status_code == 200 and verify_receipt(ready.json()) == []
