"""Snapshots of a round's state: loading one equals a full replay; a snapshot that does not belong
to the chain is ignored; a forged one is caught by the audit that `ledger verify` runs."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from dosewise.app import audit_rounds
from dosewise.ledger import Store, open_store, snapshots
from dosewise.rounds import Rounds, project

from .conftest import SCENARIO

D = dt.date.fromisoformat


def _play(store: Store, every: int) -> str:
    rounds = Rounds(store)
    rounds.snapshot_every = every
    rid = rounds.open(SCENARIO)
    day = D("2021-08-30")
    for step in range(3):
        state = rounds.state(rid)
        for k, (oid, o) in enumerate(state.offers.items()):
            if o["status"] == "offered":
                if (k + step) % 3 == 0:
                    rounds.respond(oid, "decline", reason="other", note=f"step {step}")
                else:
                    rounds.respond(oid, "accept")
        day += dt.timedelta(days=8)
        rounds.advance(rid, day)
    return rid


def _same(a: object, b: object) -> None:
    for name in ("opened", "today", "lots", "offers", "passes", "need", "need_source", "closed", "last_seq"):
        assert getattr(a, name) == getattr(b, name), name


def test_a_round_opened_from_its_snapshot_equals_the_full_replay(store: Store) -> None:
    rid = _play(store, every=5)
    rows = snapshots.all_snapshots(store)
    assert rows, "snapshots were taken"
    fresh = Rounds(store)
    state = fresh.state(rid)
    assert fresh._snapshot_seq[rid] == max(int(r["seq"]) for r in rows)
    _same(state, project(store.read(), rid))
    assert audit_rounds(store)[rid] == []
    # and it keeps going from there like any other
    fresh.advance(rid, D("2021-10-30"))
    _same(fresh.state(rid), project(store.read(), rid))


def _forge(path: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER ledger_round_snapshots_no_update")
        conn.execute(sql, args)


def test_a_snapshot_of_another_chain_is_ignored_and_a_forged_one_is_caught(tmp_path: Path) -> None:
    import hashlib
    import json

    path = tmp_path / "l.db"
    store = open_store(str(path))
    rid = _play(store, every=5)
    last = max(int(r["seq"]) for r in snapshots.all_snapshots(store))
    # a snapshot whose chain hash is not the chain's: ignored, the round replays in full
    _forge(path, "UPDATE ledger_round_snapshots SET chain_hash = ? WHERE seq = ?", "0" * 64, last)
    fresh = Rounds(open_store(str(path)))
    _same(fresh.state(rid), project(store.read(), rid))
    assert fresh._snapshot_seq.get(rid, 0) < last
    # a forged body with a matching sha256 is believed by a quick open, but not by the audit
    row = next(r for r in snapshots.all_snapshots(store) if int(r["seq"]) < last)
    body = json.loads(row["body"])
    first_lot = next(iter(body["lots"]))
    body["lots"][first_lot]["pool"] += 1_000_000
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ledger_round_snapshots SET body = ?, body_sha256 = ? WHERE seq = ?",
                     (text, hashlib.sha256(text.encode()).hexdigest(), int(row["seq"])))
    problems = audit_rounds(open_store(str(path)))[rid]
    assert any("snapshot stored at event" in p for p in problems)


def test_snapshot_text_only_the_standard_json_reader_takes_still_loads(store: Store) -> None:
    """Snapshots are read by the fast parser; text it refuses (non-finite numbers, integers beyond 64
    bits, which ``json`` writes and reads) is read by ``json`` instead, to the same state."""
    from dosewise.rounds import RoundState

    rounds = Rounds(store)
    rid = rounds.open(SCENARIO)
    state = rounds.state(rid)
    plain = RoundState.from_json(state.to_json())
    _same(plain, state)
    state.need = {"KEN": float("inf"), "UGA": 2**70}
    text = state.to_json()
    assert "Infinity" in text and str(2**70) in text
    back = RoundState.from_json(text)
    _same(back, state)
    assert back.need == {"KEN": float("inf"), "UGA": 2**70}
    assert back.to_json() == text
