"""A decision in the name of an identity with a registered signing key is refused at write time,
before anything is recorded, unless that key signed it: the rule `ledger verify` applies afterwards.
Key rotation is signed by the current key; both sides agree on every case below."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.cli_run import run_cli

from dosewise.app import Desk
from dosewise.errors import ForbiddenError
from dosewise.ledger import NewEvent, open_store
from dosewise.ledger.audit import verify_ledger
from dosewise.ledger.gate import SignatureGate
from dosewise.ledger.keys import generate
from dosewise.ledger.signing import Signer, registration
from dosewise.scenario import parse_scenario

SCENARIO = """name: signed
participants: {include: [KEN, PRK]}
lots: [{id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}]
policy: {name: covax-pro-rata, buffer: 0}
round: {id: S1, opens: 2021-08-30, reallocation: pro-rata}
"""


@pytest.fixture
def signed_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A round S1 (KEN, PRK) on a SQLite ledger where PRK registered prk.key; other.key is unregistered."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSEWISE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DOSEWISE_LEDGER_KEY", raising=False)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    assert run_cli(["round", "open", "s.yaml", "--db", "l.db"], capsys)[0] == 0
    generate(tmp_path / "prk.key")
    generate(tmp_path / "other.key")
    rc, _, err = run_cli(["keys", "register", "prk.key", "--identity", "PRK", "--role", "participant", "--db", "l.db"],
                      capsys)
    assert rc == 0, err
    return tmp_path / "l.db"


def _head(path: Path) -> int:
    store = open_store(str(path), readonly=True)
    try:
        head = store.head()
        return 0 if head is None else head.seq
    finally:
        store.close()


def _verify_ok(path: Path) -> bool:
    store = open_store(str(path), readonly=True)
    try:
        return verify_ledger(store).ok
    finally:
        store.close()


@pytest.mark.parametrize("sign_with", [None, "other.key"])
def test_an_answer_without_the_registered_key_is_refused_and_nothing_is_recorded(
        signed_ledger: Path, capsys: pytest.CaptureFixture[str], sign_with: str | None) -> None:
    before = _head(signed_ledger)
    argv = ["round", "respond", "S1:CV:PRK:0", "--accept", "--db", "l.db"]
    rc, _, err = run_cli(argv + (["--sign-with", sign_with] if sign_with else []), capsys)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    if sign_with is None:
        assert "PRK has registered a signing key" in err and "--sign-with" in err
    else:
        assert "not PRK's registered key" in err
    assert "nothing recorded" in err
    assert _head(signed_ledger) == before
    assert _verify_ok(signed_ledger), "a refused answer leaves a ledger that verifies"
    # with PRK's own key the same answer is recorded and verifies
    rc, _out, err = run_cli([*argv, "--sign-with", "prk.key"], capsys)
    assert rc == 0, err
    assert _head(signed_ledger) == before + 1 and _verify_ok(signed_ledger)


def test_write_and_verify_agree_on_what_is_forged(signed_ledger: Path) -> None:
    """Each event the gate refuses is one verify reports as forged when written past the gate."""
    other = Signer.from_file(signed_ledger.parent / "other.key")
    prk = Signer.from_file(signed_ledger.parent / "prk.key")
    note = NewEvent(type="ledger.note", actor="PRK", payload={"text": "PRK agrees"})
    attempts = [note, other.sign(note), registration(other, "PRK", "participant")]
    for attempt in attempts:
        path = signed_ledger.parent / "copy.db"
        path.write_bytes(signed_ledger.read_bytes())
        store = open_store(str(path))
        try:
            with pytest.raises(ForbiddenError):
                SignatureGate(store).append_one(attempt)
            store.append_one(attempt)  # as someone writing past the gate would
            report = verify_ledger(store)
        finally:
            store.close()
        assert [f.actor for f in report.forged] == ["PRK"], attempt.type
        path.unlink()
    store = open_store(str(signed_ledger))
    try:
        SignatureGate(store).append_one(prk.sign(note))  # what the gate lets through verifies
        assert verify_ledger(store).ok
    finally:
        store.close()


def test_desk_refuses_unsigned_decisions_of_a_keyed_party_and_api_key_answers_for_it() -> None:
    desk = Desk.open("memory")
    rid = desk.open_round(parse_scenario(__import__("yaml").safe_load(SCENARIO))).round_id
    prk = Signer(Ed25519PrivateKey.generate())
    desk.rounds.store.append_one(registration(prk, "PRK", "participant"))  # through the desk's gate
    head = desk.head()
    assert head is not None
    offer = f"{rid}:CV:PRK:0"
    with pytest.raises(ForbiddenError, match="PRK has registered a signing key"):
        desk.respond(offer, "decline", reason="efficacy_concerns", actor="PRK")
    with pytest.raises(ForbiddenError, match="PRK has registered a signing key"):
        desk.respond(offer, "accept", actor="participant:PRK:0123456789ab", participant="PRK")
    lot = {"id": "DON-1", "product": "CoronaVac", "doses": 1000, "available": "2021-09-01",
           "expiry": "2022-02-01", "donor": "PRK"}
    with pytest.raises(ForbiddenError, match="sign the donation"):
        desk.donate(rid, lot, on=dt.date(2021, 9, 1), actor="PRK")
    after = desk.head()
    assert after is not None and after.seq == head.seq
    # others are not held to PRK's key; PRK's own signed answer is recorded
    desk.respond(f"{rid}:CV:KEN:0", "accept", actor="KEN")
    ev = desk.respond(offer, "decline", reason="efficacy_concerns", actor="PRK", sign=prk.sign)
    assert ev.payload["signature"]["key_id"] == prk.public.key_id
    assert desk.verify().ok and verify_ledger(desk.store).ok
    desk.close()


def test_a_second_key_needs_the_current_keys_signature(signed_ledger: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = _head(signed_ledger)
    generate(signed_ledger.parent / "new.key")
    rotate = ["keys", "register", "new.key", "--identity", "PRK", "--role", "participant", "--db", "l.db"]
    rc, _, err = run_cli(rotate, capsys)
    assert rc == 2 and "PRK already has a registered key" in err and "--sign-with CURRENT_KEYFILE" in err
    rc, _, err = run_cli([*rotate, "--sign-with", "other.key"], capsys)
    assert rc == 2 and "PRK already has a registered key" in err
    assert _head(signed_ledger) == before
    rc, out, err = run_cli(["keys", "register", "new.key.pub", "--identity", "PRK", "--role", "participant",
                         "--db", "l.db", "--sign-with", "prk.key"], capsys)
    assert rc == 0, err
    assert "signed by the current key" in out
    assert _verify_ok(signed_ledger), "a rotation signed by the current key verifies"
    # the old key no longer speaks for PRK; the new one does
    answer = ["round", "respond", "S1:CV:PRK:0", "--decline", "efficacy_concerns", "--db", "l.db"]
    assert run_cli([*answer, "--sign-with", "prk.key"], capsys)[0] == 2
    rc, _, err = run_cli([*answer, "--sign-with", "new.key"], capsys)
    assert rc == 0, err
    assert _verify_ok(signed_ledger)


def test_register_refuses_an_unknown_participant(signed_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _head(signed_ledger)
    rc, _, err = run_cli(["keys", "register", "other.key", "--identity", "XXX", "--role", "participant",
                       "--db", "l.db"], capsys)
    assert rc == 2 and "--identity" in err and "XXX" in err
    assert _head(signed_ledger) == before


@pytest.mark.parametrize(("name", "content", "said"), [
    ("prk.key.pub", None, "public key (the .pub file), not a private key"),
    ("cp.json", '{"checkpoint": {}}\n', "JSON file, not a private key"),
])
def test_sign_with_a_file_that_is_no_private_key_says_so_first(
        signed_ledger: Path, capsys: pytest.CaptureFixture[str], name: str, content: str | None, said: str) -> None:
    path = signed_ledger.parent / name
    if content is not None:
        path.write_text(content)
    path.chmod(0o644)  # readable by others, as a public file is: the format is still the first complaint
    rc, _, err = run_cli(["round", "respond", "S1:CV:PRK:0", "--accept", "--db", "l.db", "--sign-with", name], capsys)
    assert rc == 2 and said in err and "chmod" not in err, err


def _ledger_with_key(name: str, key: str, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A ledger NAME.db whose round steps are checkpointed by KEY; returns (receipt, checkpoint) files."""
    generate(key)
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", key)
    rc, out, err = run_cli(["round", "open", "s.yaml", "--db", f"{name}.db"], capsys)
    assert rc == 0, err
    assert "no ledger key" not in out
    assert run_cli(["ledger", "prove", "1", "--out", f"{name}-r.json", "--db", f"{name}.db"], capsys)[0] == 0
    assert run_cli(["ledger", "checkpoint", "--out", f"{name}-cp.json", "--db", f"{name}.db"], capsys)[0] == 0
    return f"{name}-r.json", f"{name}-cp.json"


def test_verify_receipt_says_what_it_checked_and_names_another_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSEWISE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "s.yaml").write_text(SCENARIO)
    r1, cp1 = _ledger_with_key("one", "one.key", capsys, monkeypatch)
    r2, _ = _ledger_with_key("two", "two.key", capsys, monkeypatch)
    rc, out, _ = run_cli(["ledger", "verify-receipt", r2], capsys)
    assert rc == 0 and not out.startswith("OK"), out
    assert "CONSISTENT IN ITSELF" in out and "--checkpoint" in out
    rc, out, _ = run_cli(["ledger", "verify-receipt", r2, "--checkpoint", cp1], capsys)
    assert rc == 1 and "from a different log" in out and "no consistency proof" not in out, out
    rc, out, _ = run_cli(["ledger", "verify-receipt", r1, "--checkpoint", cp1], capsys)
    assert rc == 0 and out.startswith("OK"), out


def test_round_steps_say_when_no_checkpoint_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSEWISE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DOSEWISE_LEDGER_KEY", raising=False)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    rc, out, _ = run_cli(["round", "open", "s.yaml", "--db", "l.db"], capsys)
    assert rc == 0 and "no ledger key" in out and "no checkpoint written" in out
    rc, out, _ = run_cli(["round", "advance", "S1", "--to", "2021-10-30", "--db", "l.db"], capsys)
    assert rc == 0 and "no ledger key" in out, out


def test_service_answer_for_a_party_with_a_signing_key_is_a_clear_403(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from dosewise.service.app import create_app

    monkeypatch.setenv("DOSEWISE_STATE_DIR", str(tmp_path / "state"))
    desk = Desk.open(str(tmp_path / "l.db"), create=True, actor="service")
    rid = desk.open_round(parse_scenario(__import__("yaml").safe_load(SCENARIO))).round_id
    _, token = desk.create_key("participant", participant="PRK")
    desk.rounds.store.append_one(registration(Signer(Ed25519PrivateKey.generate()), "PRK", "participant"))
    head = desk.head()
    with TestClient(create_app(desk=desk)) as client:
        r = client.post(f"/offers/{rid}:CV:PRK:0/accept", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert "PRK has registered a signing key" in r.json()["detail"] and "--sign-with" in r.json()["detail"]
    after = desk.head()
    assert head is not None and after is not None and after.seq == head.seq


def test_a_key_recorded_by_another_writer_binds_once_the_gate_reads_again() -> None:
    """A key written past this gate binds its writes after ``refresh_every`` (here: at once, 0 s;
    a server's gate reads the key events at most once a second instead of once per answer)."""
    desk = Desk.open("memory")
    rid = desk.open_round(parse_scenario(__import__("yaml").safe_load(SCENARIO))).round_id
    gate = desk.rounds.store
    assert isinstance(gate, SignatureGate)
    desk.respond(f"{rid}:CV:KEN:0", "accept", actor="KEN")  # the gate has read the (empty) registry
    prk = Signer(Ed25519PrivateKey.generate())
    desk.store.append_one(registration(prk, "PRK", "participant"))  # another writer, past the gate
    gate.refresh_every = 0.0
    with pytest.raises(ForbiddenError, match="PRK has registered a signing key"):
        desk.respond(f"{rid}:CV:PRK:0", "decline", reason="efficacy_concerns", actor="PRK")
    desk.close()


def test_the_gate_shares_one_registry_and_publishes_a_new_one_for_new_keys() -> None:
    """Answers are checked against one shared registry (no copy per answer); a key event read later
    goes into a new registry, so one already handed out never changes under its reader, and a
    refused key event changes neither."""
    gate = SignatureGate(open_store("memory"), refresh_every=3600.0)
    before = gate._current()
    assert gate._current() is before and not before.history
    copy_ = gate.registry()
    assert copy_ is not before
    copy_.history["X"] = []  # a caller's copy is its own
    assert "X" not in gate._current().history
    gate.append_one(NewEvent(type="offer.accepted", actor="participant:KEN:0123456789ab", payload={"offer": "o"}))
    assert gate._current() is before  # an answer neither copies nor changes it
    prk = Signer(Ed25519PrivateKey.generate())
    forged = registration(Signer(Ed25519PrivateKey.generate()), "PRK", "participant")
    forged = NewEvent(type=forged.type, actor="KEN", payload=forged.payload)  # in another's name: refused
    with pytest.raises(ForbiddenError):
        gate.append_one(forged)
    assert gate._current() is before and not before.history
    gate.append_one(registration(prk, "PRK", "participant"))
    after = gate._current()
    assert after is not before and "PRK" in after.history and not before.history
    with pytest.raises(ForbiddenError, match="PRK has registered a signing key"):
        gate.append_one(NewEvent(type="offer.declined", actor="participant:PRK:0123456789ab",
                                 payload={"offer": "o2", "reason": "efficacy_concerns"}))
