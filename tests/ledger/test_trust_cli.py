"""The parties' commands end to end on the demo rounds' ledger: keys, checkpoints, receipts, witnesses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from tests.cli_run import run_cli

from dosewise.app import Desk, run_demo
from dosewise.ledger import NewEvent, open_store
from dosewise.ledger.events import GENESIS_HASH, row_hash
from dosewise.ledger.signing import Signer


@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with Desk(open_store(str(path)), actor="covax-demo") as desk:
        run_demo(desk, impact=False)
    return path


@pytest.fixture
def ledger(demo_ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.db"
    path.write_bytes(demo_ledger.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSEWISE_DB", str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prk_decline_seq(path: Path) -> int:
    store = open_store(str(path), readonly=True)
    try:
        return next(e.seq for e in store.read(types=["offer.declined"]) if e.participant == "PRK")
    finally:
        store.close()


def _rewrite(path: Path, drop_seq: int) -> None:
    """Delete one event, re-chain every later one, and drop the stored checkpoints (as the database owner)."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
    with engine.begin() as conn:
        for t in ("ledger_events_no_update", "ledger_events_no_delete", "ledger_checkpoints_no_delete"):
            conn.exec_driver_sql(f"DROP TRIGGER {t}")
        rows = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM ledger_events ORDER BY seq")]
        conn.exec_driver_sql("DELETE FROM ledger_events")
        conn.exec_driver_sql("DELETE FROM ledger_checkpoints")
        prev, out_rows = GENESIS_HASH, []
        for i, r in enumerate([r for r in rows if r[0] != drop_seq], start=1):
            head = (i, *r[1:12], prev)
            prev = row_hash(head)
            out_rows.append((*head, prev))
        conn.exec_driver_sql(f"INSERT INTO ledger_events VALUES ({', '.join(['?'] * 14)})", out_rows)
    engine.dispose()


def test_keys_gen_prints_only_the_public_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["keys", "gen", "--out", str(tmp_path / "prk.key")], capsys)
    pem = (tmp_path / "prk.key").read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert code == 0 and "public key: " in out and body not in out and "PRIVATE" not in out
    code, _, err = run_cli(["keys", "gen", "--out", str(tmp_path / "prk.key")], capsys)
    assert code == 2 and "already exists" in err and body not in err


def test_checkpoint_prove_and_verify_receipt_offline(ledger: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(["keys", "gen", "--out", "ledger.key"], capsys)
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", "ledger.key")
    code, out, _ = run_cli(["ledger", "checkpoint", "--out", "cp1.json"], capsys)
    assert code == 0 and "signed by the ledger key" in out
    seq = _prk_decline_seq(ledger)
    code, out, _ = run_cli(["ledger", "prove", str(seq), "--out", "receipt.json"], capsys)
    assert code == 0, out
    code, out, _ = run_cli(["ledger", "verify-receipt", "receipt.json", "--checkpoint", "cp1.json"], capsys)
    assert code == 0 and f"event seq {seq} (offer.declined" in out
    # a party that holds a later checkpoint asks for a receipt linked to it
    store = open_store(str(ledger))
    store.append_one(NewEvent(type="round.note", actor="covax-demo", payload={"text": "after the round"}))
    store.close()
    run_cli(["ledger", "checkpoint", "--out", "cp2.json"], capsys)
    code, out, _ = run_cli(["ledger", "verify-receipt", "receipt.json", "--checkpoint", "cp2.json"], capsys)
    assert code == 1 and "no consistency proof" in out
    code, _, _ = run_cli(["ledger", "prove", str(seq), "--out", "receipt2.json", "--checkpoint", "cp1.json"], capsys)
    code, out, _ = run_cli(["ledger", "verify-receipt", "receipt2.json", "--checkpoint", "cp1.json",
                         "--checkpoint", "cp2.json"], capsys)
    assert code == 0, out
    # an edited receipt fails
    data = json.loads(Path("receipt2.json").read_text())
    data["event"]["payload"]["reason"] = "accepted after all"
    Path("forged.json").write_text(json.dumps(data))
    code, out, _ = run_cli(["ledger", "verify-receipt", "forged.json", "--checkpoint", "cp2.json"], capsys)
    assert code == 1 and "does not match its hash" in out


def test_verify_with_checkpoint_catches_a_rewrite_the_chain_misses(ledger: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(["keys", "gen", "--out", "ledger.key"], capsys)
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", "ledger.key")
    store = open_store(str(ledger))
    note = store.append_one(NewEvent(type="ledger.note", actor="covax-demo", payload={"text": "DPRK asked to "
                                     "re-offer its CoronaVac doses to severely affected countries"}))
    store.append_one(NewEvent(type="ledger.note", actor="covax-demo", payload={"text": "reviewed"}))
    store.close()
    run_cli(["ledger", "checkpoint", "--out", "cp.json"], capsys)
    _rewrite(ledger, drop_seq=note.seq)  # the operator deletes the note and re-chains what follows
    code, out, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 0, out  # the chain (and the rounds' balance) alone cannot tell
    code, out, _ = run_cli(["ledger", "verify", "--checkpoint", "cp.json"], capsys)
    assert code == 1 and "fewer than the" in out


def test_witness_cosigns_only_consistent_checkpoints(ledger: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ledger", "observer"):
        run_cli(["keys", "gen", "--out", f"{name}.key"], capsys)
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", "ledger.key")
    run_cli(["ledger", "checkpoint", "--out", "cp1.json"], capsys)
    code, out, _ = run_cli(["ledger", "cosign", "cp1.json", "--key", "observer.key", "--name", "observer",
                         "--log", "witness.jsonl"], capsys)
    assert code == 0 and len(Path("witness.jsonl").read_text().splitlines()) == 1
    code, out, _ = run_cli(["ledger", "verify", "--checkpoint", "cp1.json"], capsys)
    assert code == 0 and "cosigned by observer" in out
    # the operator forks the log: a checkpoint of a different history at a larger size
    fork = ledger.parent / "fork.db"
    fork.write_bytes(ledger.read_bytes())
    store = open_store(str(fork))
    store.append_one(NewEvent(type="x", actor="covax-demo"))
    store.append_one(NewEvent(type="y", actor="covax-demo"))
    store.close()
    _rewrite(fork, drop_seq=2)
    code, _, _ = run_cli(["ledger", "checkpoint", "--db", str(fork), "--out", "forked.json"], capsys)
    assert code == 0
    code, out, _ = run_cli(["ledger", "cosign", "forked.json", "--key", "observer.key", "--log", "witness.jsonl",
                         "--db", str(fork)], capsys)
    assert code == 1 and "not consistent" in out
    assert len(Path("witness.jsonl").read_text().splitlines()) == 1
    # the honest ledger's next checkpoint is cosigned and appended
    store = open_store(str(ledger))
    store.append_one(NewEvent(type="x", actor="covax-demo"))
    store.close()
    run_cli(["ledger", "checkpoint", "--out", "cp2.json", "--append-to", "log.jsonl"], capsys)
    code, out, _ = run_cli(["ledger", "cosign", "cp2.json", "--key", "observer.key", "--log", "witness.jsonl"], capsys)
    assert code == 0 and len(Path("witness.jsonl").read_text().splitlines()) == 2
    code, out, _ = run_cli(["ledger", "export-checkpoints", "--out", "log.jsonl"], capsys)
    assert code == 0 and len(Path("log.jsonl").read_text().splitlines()) == 2


def test_verify_never_writes(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _sha(ledger)
    code, _, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 0 and _sha(ledger) == before
    # a ledger at the first schema revision is verified as it is, not migrated
    old = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{old}", poolclass=sa.NullPool)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(open_store.__code__.co_filename).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    before = _sha(old)
    code, out, _ = run_cli(["ledger", "verify", "--db", str(old)], capsys)
    assert code == 1 and "empty" in out and _sha(old) == before
    code, out, _ = run_cli(["ledger", "verify", "--db", str(old), "--allow-empty"], capsys)
    assert code == 0 and _sha(old) == before


def test_empty_and_missing_ledgers_fail_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    open_store(str(empty)).close()
    assert run_cli(["ledger", "verify", "--db", str(empty)], capsys)[0] == 1
    assert run_cli(["ledger", "verify", "--db", str(empty), "--allow-empty"], capsys)[0] == 0
    assert run_cli(["ledger", "verify", "--db", str(tmp_path / "none.db")], capsys)[0] == 1
    assert run_cli(["ledger", "verify", "--db", str(tmp_path / "none.db"), "--allow-empty"], capsys)[0] == 0
    assert not (tmp_path / "none.db").exists()


def test_signed_answer_through_the_cli_registry(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Kenya registers a key (the demo ledger already holds DPRK's, which signed its decline)."""
    run_cli(["keys", "gen", "--out", "ken.key"], capsys)
    code, out, _ = run_cli(["keys", "register", "ken.key", "--identity", "KEN", "--role", "participant"], capsys)
    assert code == 0 and "registered for KEN" in out
    store = open_store(str(ledger))
    store.append_one(Signer.from_file("ken.key").sign(NewEvent(type="offer.accepted", actor="KEN", offer_id="Z1")))
    store.close()
    code, out, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 0 and "signatures checked: 4" in out
    store = open_store(str(ledger))
    store.append_one(NewEvent(type="offer.declined", actor="KEN", offer_id="Z2"))  # not Kenya's doing
    store.close()
    code, out, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 1 and "forged event" in out and "actor KEN" in out


def test_bad_checkpoint_and_receipt_files_are_clear_errors(ledger: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOSEWISE_LEDGER_KEY", raising=False)
    Path("cp.json").write_text('{"checkpoint": {"context": "dosewise/checkpoint/v1", "tree_size": -3}}')
    code, _, err = run_cli(["ledger", "verify", "--checkpoint", "cp.json"], capsys)
    assert code == 2 and "cp.json" in err and "tree_size" in err and "Traceback" not in err
    code, _, err = run_cli(["ledger", "verify-receipt", "nothing.json"], capsys)
    assert code == 2 and "nothing.json" in err
    Path("r.json").write_text('{"receipt": "dosewise/receipt/v1", "event": {}}')
    code, out, _ = run_cli(["ledger", "verify-receipt", "r.json"], capsys)
    assert code == 1 and "malformed" in out
    code, _, err = run_cli(["ledger", "checkpoint"], capsys)
    assert code == 2 and "DOSEWISE_LEDGER_KEY" in err
