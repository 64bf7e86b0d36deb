"""The service in process: two-person rule, idempotent retries, problem details in the CLI's
words, API keys (hashed, shown once, revocable, never in the ledger), offline docs."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import SCENARIO, Ledger, open_round

from dosewise.app import Desk
from dosewise.errors import NotFoundError
from dosewise.service.app import create_app
from dosewise.service.settings import Settings

DECLINE = {"reason": "efficacy_concerns", "note": "the doses should go where they are needed",
           "wish": "severely affected countries"}


def test_two_person_rule(served: tuple[Ledger, TestClient, Desk]) -> None:
    ledger, client, desk = served
    r = client.post("/rounds", json={"scenario": SCENARIO, "round_id": "T1"}, headers=ledger.auth("coordinator"))
    assert r.status_code == 201
    proposal = r.json()
    assert proposal["proposed_by"] == "carla" and proposal["offers"]
    assert proposal["actor"] == f"coordinator:carla:{ledger.key_ids['coordinator']}"
    # no offer goes out before approval
    assert client.get("/rounds/T1/offers", headers=ledger.auth("observer")).json()["items"] == []
    head = desk.head()
    r = client.post("/rounds/T1/approve", headers=ledger.auth("reviewer-carla"))
    assert r.status_code == 403 and "two-person rule" in r.json()["detail"]
    assert desk.head() == head
    r = client.post("/rounds/T1/approve", headers=ledger.auth("reviewer"))
    assert r.status_code == 200 and r.json()["offers"] == len(proposal["offers"])
    assert r.json()["approval"]["actor"] == f"reviewer:rita:{ledger.key_ids['reviewer']}"
    status = client.get("/rounds/T1", headers=ledger.auth("participant")).json()
    assert status["phase"] == "open" and status["balanced"] and status["approved_by"] == "rita"
    again = client.post("/rounds/T1/approve", headers=ledger.auth("reviewer"))
    assert again.status_code == 409


def test_idempotent_retries_record_once(served: tuple[Ledger, TestClient, Desk]) -> None:
    ledger, client, desk = served
    headers = {**ledger.auth("coordinator"), "Idempotency-Key": "propose-1"}
    first = client.post("/rounds", json={"scenario": SCENARIO, "round_id": "T1"}, headers=headers)
    head = desk.head()
    second = client.post("/rounds", json={"scenario": SCENARIO, "round_id": "T1"}, headers=headers)
    assert second.status_code == 201 and second.json() == first.json() and desk.head() == head
    approve = {**ledger.auth("reviewer"), "Idempotency-Key": "approve-1"}
    a1 = client.post("/rounds/T1/approve", headers=approve)
    a2 = client.post("/rounds/T1/approve", headers=approve)
    assert a1.status_code == a2.status_code == 200 and a1.json() == a2.json()
    answer = {**ledger.auth("participant"), "Idempotency-Key": "answer-1"}
    d1 = client.post("/offers/T1:CV:PRK:0/decline", json=DECLINE, headers=answer)
    head = desk.head()
    d2 = client.post("/offers/T1:CV:PRK:0/decline", json=DECLINE, headers=answer)
    assert d1.status_code == d2.status_code == 200 and d1.json() == d2.json() and desk.head() == head
    assert d1.json()["payload"]["wish"] == "severely affected countries"
    assert d1.json()["actor"] == f"participant:PRK:{ledger.key_ids['participant']}"
    # the same key for another request is a conflict, and records nothing
    d3 = client.post("/offers/T1:PF:PRK:0/accept", headers=answer)
    assert d3.status_code == 409 and desk.head() == head
    # a second answer without the key: the CLI's words
    d4 = client.post("/offers/T1:CV:PRK:0/accept", headers=ledger.auth("participant"))
    assert d4.status_code == 409
    assert d4.json()["detail"] == "offer T1:CV:PRK:0 is already declined; cannot mark it accepted"
    # keys are scoped to the caller's API key: another key's "answer-1" is a new request
    ken = {**ledger.auth("other-participant"), "Idempotency-Key": "answer-1"}
    assert client.post("/offers/T1:CV:KEN:0/accept", headers=ken).status_code == 200
    ship = {**ledger.auth("admin"), "Idempotency-Key": "ship-1"}
    s1 = client.post("/offers/T1:CV:KEN:0/ship", json={"on": "2021-09-20"}, headers=ship)
    s2 = client.post("/offers/T1:CV:KEN:0/ship", json={"on": "2021-09-20"}, headers=ship)
    assert s1.status_code == 200 and s1.json() == s2.json()
    adv = {**ledger.auth("coordinator"), "Idempotency-Key": "advance-1"}
    v1 = client.post("/rounds/T1/advance", json={"to": "2021-09-08"}, headers=adv)
    head = desk.head()
    v2 = client.post("/rounds/T1/advance", json={"to": "2021-09-08"}, headers=adv)
    assert v1.status_code == v2.status_code == 200 and v1.json() == v2.json() and v1.json()["recorded"] > 0
    assert desk.head() == head
    assert desk.verify().ok and desk.view("T1").balance_ok()


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_errors_are_problem_details_in_the_cli_words(served: tuple[Ledger, TestClient, Desk]) -> None:
    ledger, client, desk = served
    open_round(ledger, client)
    observer = ledger.auth("observer")
    r = client.get("/rounds/nope", headers=observer)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == str(NotFoundError("no such round in the ledger", field="round", value="nope"))
    assert r.json()["instance"] == "/rounds/nope" and r.json()["title"] == "Not Found"
    r = client.get("/offers/T1:CV:XXX:0", headers=ledger.auth("participant"))
    assert r.status_code == 404 and "no such offer in the ledger" in r.json()["detail"]
    participant = ledger.auth("participant")
    head = desk.head()
    r = client.post("/offers/T1:CV:PRK:0/decline", json={"reason": "because"}, headers=participant)
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = client.post("/offers/T1:CV:PRK:0/decline", content=b"{not json", headers={
        **participant, "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/offers/T1:CV:PRK:0/decline", json={**DECLINE, "note": "a\x00b"}, headers=participant)
    assert r.status_code == 422
    r = client.post("/offers/T1:CV:PRK:0/accept", json={"on": "2021-12-31"}, headers=participant)
    assert r.status_code == 409 and "after the deadline" in r.json()["detail"]
    r = client.post("/rounds", json={"scenario": "name: x\nlots: 3\n"}, headers=ledger.auth("coordinator"))
    assert r.status_code == 422 and "request body" in r.json()["detail"]
    r = client.post("/rounds/T1/advance", json={"to": "2400-01-01"}, headers=ledger.auth("coordinator"))
    assert r.status_code == 422 and "dates after 2199-12-31" in r.json()["detail"]
    assert desk.head() == head
    r = client.get("/me", headers={"Authorization": "Bearer dw_0123456789ab_" + "x" * 43})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "x" * 43 not in r.text


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def test_keys_commands_and_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dosewise.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def dw(*args: str) -> Run:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    db = str(tmp_path / "l.db")
    r = dw("keys", "create", "--role", "participant", "--participant", "prk", "--db", db)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("dw_")
    key_id = token.split("_")[1]
    listed = dw("keys", "list", "--db", db)
    assert key_id in listed.stdout and "PRK" in listed.stdout and token.split("_", 2)[2] not in listed.stdout
    con = sqlite3.connect(db)
    stored = con.execute("select secret_hash from identities where key_id = ?", (key_id,)).fetchone()[0]
    assert stored.startswith("$argon2id$") and token.split("_", 2)[2] not in stored
    rows = " ".join(str(row) for row in con.execute("select * from ledger_events"))
    assert key_id in rows and token.split("_", 2)[2] not in rows and "argon2" not in rows
    assert dw("keys", "create", "--role", "participant", "--db", db).returncode == 2
    bad = dw("keys", "create", "--role", "king", "--db", db)
    assert bad.returncode == 2 and "role must be one of" in bad.stderr and "Traceback" not in bad.stderr
    with Desk.open(db) as desk, TestClient(create_app(Settings(db=db), desk=desk)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        me = client.get("/me", headers=auth).json()
        assert me["role"] == "participant" and me["participant"] == "PRK"
        assert me["actor"] == f"participant:PRK:{key_id}"
        assert dw("keys", "revoke", key_id, "--db", db).returncode == 0
        time.sleep(1.1)  # a server reads a key's row again after a second: revoked elsewhere, refused by then
        assert client.get("/me", headers=auth).status_code == 401
    types = [row[0] for row in sqlite3.connect(db).execute("select type from ledger_events order by seq")]
    assert types == ["identity.created", "identity.revoked"]
    assert dw("serve", "--help").returncode == 0


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_docs_work_offline(served: tuple[Ledger, TestClient, Desk]) -> None:
    _, client, _ = served
    page = client.get("/docs")
    assert (page.status_code == 200 and "://" not in page.text.replace("http://", "").replace("https://", "")) \
        or "cdn" not in page.text
    assert "cdn.jsdelivr" not in page.text and "unpkg" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert client.get(f"/static-offline-docs/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 200 and "cdn.jsdelivr" not in client.get("/redoc").text
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
