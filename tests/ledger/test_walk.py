"""The ranged, parallel walk behind ``verify_ledger`` finds exactly what one sequential walk finds.

Each tamper below is applied to a ledger of signed and unsigned events with checkpoints; the
report of a walk cut into ranges of 8 events must equal the report of a walk in one range, and
its chain findings must equal :func:`~dosewise.ledger.events.verify_rows` over the same rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.ledger import MemoryStore, NewEvent, open_store
from dosewise.ledger.audit import AuditReport, verify_ledger
from dosewise.ledger.checkpoints import Checkpoint, checkpoint
from dosewise.ledger.events import row_hash, verify_rows
from dosewise.ledger.signing import Signer, _signable, registration, revocation
from dosewise.ledger.walk import _signed_form, _text_form

Rows = list[tuple[Any, ...]]
LEDGER_KEY = Ed25519PrivateKey.generate()
SIGNERS = {c: Signer(Ed25519PrivateKey.generate()) for c in ("AFG", "PRK", "SDN")}


def _fill(store: Any) -> list[Checkpoint]:
    """~90 events: registrations, offers by the secretariat, signed answers, a revocation; a
    checkpoint every 20 events."""
    held = []
    store.append([registration(s, c, "participant") for c, s in SIGNERS.items()])
    for i in range(40):
        code = ("AFG", "PRK", "SDN")[i % 3]
        store.append_one(NewEvent(type="offer.made", actor="secretariat", offer_id=f"O{i}", participant=code,
                                  payload={"doses": 2400 * (i + 1), "note": "é\u2028"}))
        if code == "SDN" and i > 30:
            continue  # SDN's key is revoked below; its later offers stay unanswered
        store.append_one(SIGNERS[code].sign(NewEvent(type="offer.accepted", actor=code, offer_id=f"O{i}",
                                                     payload={"doses": 2400 * (i + 1)})))
        if i == 30:
            sdn = SIGNERS["SDN"]
            store.append_one(revocation(sdn, "SDN", sdn.public.key_id))
        if store.head().seq % 20 < 2:
            held.append(checkpoint(store, LEDGER_KEY))
    return held


def _rechain(rows: Rows, start: int) -> Rows:
    """Recompute seq links and hashes from index ``start`` on (what an operator hiding an edit does)."""
    out = list(rows[:start])
    prev = out[-1][13] if out else "0" * 64
    for row in rows[start:]:
        head = (*row[:12], prev)
        prev = row_hash(head)
        out.append((*head, prev))
    return out


def _edit_payload(rows: Rows, i: int, rechain: bool) -> Rows:
    payload = json.loads(rows[i][7])
    payload["doses"] = 1
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    out = [*rows[:i], (*rows[i][:7], text, *rows[i][8:]), *rows[i + 1:]]
    return _rechain(out, i) if rechain else out


def _forge(rows: Rows, i: int) -> Rows:
    """An answer in PRK's name without PRK's key, inserted with a correct chain."""
    fake = (0, f"forged-{i}", "offer.declined", None, "O1", None, "PRK", '{"reason":"none"}', "PRK",
            rows[i][9], None, None, "")
    out = [*rows[:i], fake, *rows[i:]]
    out = [(k + 1, *r[1:]) for k, r in enumerate(out)]
    return _rechain(out, i)


TAMPERS: dict[str, Callable[[Rows, int], Rows]] = {
    "edit": lambda rows, i: _edit_payload(rows, i, rechain=False),
    "edit and rechain": lambda rows, i: _edit_payload(rows, i, rechain=True),
    "delete": lambda rows, i: [*rows[:i], *rows[i + 1:]],
    "delete and rechain": lambda rows, i: _rechain([(k + 1, *r[1:]) for k, r in
                                                    enumerate([*rows[:i], *rows[i + 1:]])], i),
    "swap": lambda rows, i: [*rows[:i], rows[i + 1], rows[i], *rows[i + 2:]],
    "break a link": lambda rows, i: [*rows[:i], (*rows[i][:12], "f" * 64, rows[i][13]), *rows[i + 1:]],
    "forge and rechain": _forge,
    "truncate": lambda rows, i: rows[:i],
    "bad hash text": lambda rows, i: [*rows[:i], (*rows[i][:13], "not hex"), *rows[i + 1:]],
}


def _findings(r: AuditReport) -> tuple[Any, ...]:
    return (r.chain, r.tree_size, r.root_hash, r.signatures_checked, r.forged, r.checkpoints, r.read_error)


def _ledger() -> tuple[MemoryStore, list[Checkpoint]]:
    store = MemoryStore()
    return store, _fill(store)


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
@pytest.mark.parametrize("where", [3, 7, 8, 9, 16, 24, 33, 60])
def test_ranges_find_what_one_walk_finds(tamper: str, where: int) -> None:
    store, held = _ledger()
    clean = verify_ledger(store, [("held", c) for c in held], chunk=8, workers=1)
    assert clean.ok and clean.chain.checked == len(store._rows) and not clean.forged
    assert _findings(clean) == _findings(verify_ledger(store, [("held", c) for c in held], chunk=1 << 20))
    store._rows[:] = TAMPERS[tamper](list(store._rows), where)
    pairs = [("held", c) for c in held]
    ranged = verify_ledger(store, pairs, chunk=8, workers=1)
    whole = verify_ledger(store, pairs, chunk=1 << 20, workers=1)
    assert _findings(ranged) == _findings(whole)
    assert not ranged.ok  # every tamper here is refused or detected
    reference = verify_rows(store._rows)
    assert (ranged.chain.ok, ranged.chain.first_bad_seq, ranged.chain.problem, ranged.chain.checked,
            ranged.chain.head_hash) == (reference.ok, reference.first_bad_seq, reference.problem,
                                        reference.checked, reference.head_hash)


def test_worker_processes_on_sqlite_find_what_one_walk_finds(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "l.db"))
    held = _fill(store)
    pairs = [("held", c) for c in held]
    assert _findings(verify_ledger(store, pairs, chunk=16, workers=2)) == _findings(verify_ledger(store, pairs))
    seq = next(r[0] for r in store.rows() if r[8] == "PRK" and r[2] == "offer.accepted" and r[0] > 40)
    store.close()
    import sqlite3

    con = sqlite3.connect(tmp_path / "l.db")
    con.execute("DROP TRIGGER IF EXISTS ledger_events_no_update")
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    rows = [tuple(r) for r in con.execute("SELECT * FROM ledger_events ORDER BY seq")]
    cols = [d[0] for d in con.execute("SELECT * FROM ledger_events LIMIT 1").description]
    assert cols[:14] == ["seq", "event_id", "type", "round_id", "offer_id", "lot_id", "participant", "payload",
                         "actor", "recorded_at", "idempotency_key", "unique_slot", "prev_hash", "hash"]
    forged = _edit_payload(rows, seq - 1, rechain=True)
    con.execute("DELETE FROM ledger_events")
    con.executemany(f"INSERT INTO ledger_events VALUES ({', '.join('?' * len(cols))})", forged)
    con.commit()
    con.close()
    store = open_store(str(tmp_path / "l.db"), readonly=True)
    parallel = verify_ledger(store, pairs, chunk=16, workers=2)
    assert _findings(parallel) == _findings(verify_ledger(store, pairs, workers=1))
    assert [(f.seq, f.actor) for f in parallel.forged] == [(seq, "PRK")]
    assert any(not c.ok for c in parallel.checkpoints)  # a checkpoint held from before sees the rewrite
    store.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _json, max_size=4), st.text(max_size=6))
def test_signed_form_is_the_reference_signable_form(payload: dict[str, Any], actor: str) -> None:
    from dosewise.errors import InputError
    from dosewise.ledger.walk import _DECODER, _Float, _plain_text

    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # not storable text
    row = (1, "e", "t", None, "O1", None, actor or None, text, actor or "a", "2021-01-01T00:00:00Z", None, None)
    try:
        parsed, plain = _DECODER.decode(text), True
    except _Float:
        parsed, plain = json.loads(text), False
    try:
        want = _signable("e", "t", actor or "a", None, "O1", None, actor or None, parsed, None, None)
    except InputError:
        with pytest.raises(InputError):
            _signed_form(row, parsed, plain and _plain_text(text))
        return
    assert _signed_form(row, parsed, plain and _plain_text(text)) == want
    # the form written from the stored text, as a ledger stores it (canonical, with the stamp)
    stamp = {"alg": "Ed25519", "key_id": "k", "sig": actor}
    stored = json.dumps({**payload, "signature": stamp}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if plain and _plain_text(stored) and "signature" not in payload:
        assert _text_form(row, stored, stamp) == want


def test_a_signed_payload_stored_in_another_json_spelling_still_verifies() -> None:
    """The text form fails on a payload re-spelt (spaces, key order); the parsed form decides."""
    store = MemoryStore()
    store.append_one(registration(SIGNERS["PRK"], "PRK", "participant"))
    store.append_one(SIGNERS["PRK"].sign(NewEvent(type="offer.declined", actor="PRK", offer_id="O1",
                                                  payload={"reason": "short_shelf_life", "doses": 10})))
    row = store._rows[1]
    payload = json.loads(row[7])
    respelt = json.dumps(dict(reversed(list(payload.items()))), indent=1, ensure_ascii=False)
    store._rows[:] = _rechain([store._rows[0], (*row[:7], respelt, *row[8:])], 1)
    report = verify_ledger(store, chunk=1, workers=1)
    assert report.ok and report.signatures_checked == 2
    payload["reason"] = "accepted after all"  # and a change of content is still caught
    changed = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    store._rows[:] = _rechain([store._rows[0], (*row[:7], changed, *row[8:])], 1)
    report = verify_ledger(store, chunk=1, workers=1)
    assert [(f.seq, f.reason) for f in report.forged] == [(2, "signature does not verify (content changed after "
                                                               "signing, or not signed by this key)")]


def test_worker_processes_read_their_ranges_on_every_sql_backend(sql_store: Any, sql_url: str,
                                                                 raw_sql: Callable[[str], None]) -> None:
    held = _fill(sql_store)
    pairs = [("held", c) for c in held]
    parallel = verify_ledger(sql_store, pairs, chunk=16, workers=2)
    assert parallel.ok and _findings(parallel) == _findings(verify_ledger(sql_store, pairs, workers=1))
    # the owner edits an event in the fourth range without re-chaining (triggers dropped first)
    if sql_url.startswith("postgresql"):
        raw_sql("ALTER TABLE ledger_events DISABLE TRIGGER USER")
    else:
        for name in ("ledger_events_no_update", "ledger_events_no_delete"):
            raw_sql(f"DROP TRIGGER IF EXISTS {name}")
    raw_sql("UPDATE ledger_events SET payload = '{\"doses\":1}' WHERE seq = 53")
    parallel = verify_ledger(sql_store, pairs, chunk=16, workers=2)
    assert _findings(parallel) == _findings(verify_ledger(sql_store, pairs, workers=1))
    assert parallel.chain.first_bad_seq == 53 and "edited row" in str(parallel.chain.problem)
