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


def _first_layout(text: str) -> str:
    """A snapshot's text in the first layout (every offer column a list, no ``format``), as
    snapshots stored before the offers' columns were packed read."""
    import json

    from dosewise.rounds import RoundState
    from dosewise.rounds.offers import FIELDS

    state = RoundState.from_json(text)
    data = json.loads(text)
    del data["format"]
    data["offers"] = {c: state.offers.column(c) for c in FIELDS}  # (no "order": offers found by a dict)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_a_snapshot_in_the_first_layout_still_opens_the_round_and_passes_the_audit(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = open_store(str(path))
    rid = _play(store, every=0)
    rounds = Rounds(store)
    seq = rounds.snapshot(rid)
    row = next(r for r in snapshots.all_snapshots(store) if int(r["seq"]) == seq)
    old = _first_layout(str(row["body"]))
    assert '"format"' in row["body"] and '"format"' not in old and len(old) > len(row["body"])
    import hashlib

    with sqlite3.connect(path) as conn:  # the row as an earlier version wrote it
        conn.execute("DROP TRIGGER ledger_round_snapshots_no_update")
        conn.execute("UPDATE ledger_round_snapshots SET body = ?, body_sha256 = ? WHERE seq = ?",
                     (old, hashlib.sha256(old.encode()).hexdigest(), seq))
    reopened = open_store(str(path))
    fresh = Rounds(reopened)
    state = fresh.state(rid)
    assert fresh._snapshot_seq[rid] == seq and state.offers.built == 0  # opened from it, offers as columns
    _same(state, project(reopened.read(), rid))
    assert audit_rounds(reopened)[rid] == []
    fresh.advance(rid, D("2021-10-30"))  # and goes on from there
    _same(fresh.state(rid), project(reopened.read(), rid))


def test_a_forged_snapshot_that_does_not_read_is_refused_and_the_round_replayed(tmp_path: Path) -> None:
    """Rows whose text matches their sha256 but whose offers' columns do not read (or do not hold the
    offers the later events answer): the round opens by a full replay, and the audit reports them."""
    import json
    from collections.abc import Callable
    from typing import Any

    from dosewise.rounds.offers import Ints

    path = tmp_path / "l.db"
    store = open_store(str(path))
    first = Rounds(store)
    first.snapshot_every = 0
    rid = first.open(SCENARIO)
    seq = first.snapshot(rid)
    state = first.state(rid)
    open_ = [oid for oid, o in state.offers.items() if o["status"] == "offered"]
    assert len(open_) >= 2
    first.respond(open_[0], "accept")  # events after the snapshot, on offers it holds
    first.respond(open_[1], "decline", reason="other")
    first.advance(rid, D("2021-10-30"))
    body = json.loads(next(r for r in snapshots.all_snapshots(store) if int(r["seq"]) == seq)["body"])
    assert isinstance(body["offers"]["lot"], dict), "the lot column is packed"
    touched = {e.offer_id for e in store.read(after_seq=seq, round_id=rid) if e.offer_id}
    assert touched & set(body["offers"]["offer"]), "the events after the snapshot answer offers it holds"

    def codes_beyond(o: dict[str, Any]) -> None:
        o["lot"]["values"] = o["lot"]["values"][:1]

    def not_base64(o: dict[str, Any]) -> None:
        o["lot"]["codes"] = "@@@"

    def id_twice(o: dict[str, Any]) -> None:
        o["offer"][1] = o["offer"][0]

    def one_short(o: dict[str, Any]) -> None:
        o["offer"].pop()

    def renamed(o: dict[str, Any]) -> None:  # reads, but the later events' offers are not in it
        o["offer"] = [f"{oid}:renamed" for oid in o["offer"]]

    def order_reversed(o: dict[str, Any]) -> None:
        o["order"] = Ints.pack(Ints.unpack(o["order"]).tolist()[::-1], unsigned32=True)

    def no_order(o: dict[str, Any]) -> None:  # reads (ids found by a dict), but renamed as well
        del o["order"]
        renamed(o)

    forgeries: list[Callable[[dict[str, Any]], None]] = [codes_beyond, not_base64, id_twice, one_short, renamed,
                                                        order_reversed, no_order]
    for forge in forgeries:
        forged = json.loads(json.dumps(body))
        forge(forged["offers"])
        _rewrite(path, seq, forged)
        fresh = Rounds(open_store(str(path)))
        _same(fresh.state(rid), project(store.read(), rid))
        assert rid not in fresh._snapshot_seq, forge.__name__  # not opened from it
        problems = audit_rounds(open_store(str(path)))[rid]
        assert any("snapshot stored at event" in p for p in problems), forge.__name__


def _rewrite(path: Path, seq: int, body: dict[str, object]) -> None:
    import hashlib
    import json

    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS ledger_round_snapshots_no_update")
        conn.execute("UPDATE ledger_round_snapshots SET body = ?, body_sha256 = ? WHERE seq = ?",
                     (text, hashlib.sha256(text.encode()).hexdigest(), seq))
