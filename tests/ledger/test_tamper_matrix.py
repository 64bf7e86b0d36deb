"""The tamper matrix: every way an operator with write access to the ledger might rewrite it.

Each class is tried on every backend where it means something (memory, SQLite, PostgreSQL).
It must be *refused* by the database (the statement fails and nothing changes) or *detected*
by ``verify_ledger`` given what a party held from before the tamper — a signed checkpoint —
or by a signature (an event in the name of an identity with a registered key). The
``mechanism`` says which check must catch it: ``chain`` (hash chain), ``checkpoint`` (a held
checkpoint's tree is no longer a prefix of the ledger), ``signature`` (a forged event) or
``unreadable`` (the database cannot be opened or read).

Some classes pass the plain hash chain (``verify`` without checkpoints): the test asserts
that too, so the matrix shows what the checkpoints and signatures add.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dosewise.errors import LedgerError
from dosewise.ledger import GENESIS_HASH, MemoryStore, NewEvent, Store, open_store
from dosewise.ledger import tree as ledger_tree
from dosewise.ledger.audit import AuditReport, make_receipt, verify_ledger, verify_receipt
from dosewise.ledger.checkpoints import Checkpoint, checkpoint
from dosewise.ledger.events import row_hash
from dosewise.ledger.merkle import ProofError, verify_consistency
from dosewise.ledger.signing import Signer, registration, revocation

PARTICIPANTS = ["AFG", "BGD", "COD", "ETH", "NGA", "PRK", "SDN", "YEM"]
MARKER = "PRK-declines-lot-AZ-007"


@dataclass
class Scene:
    backend: str
    url: str
    store: Store
    ledger_key: Ed25519PrivateKey
    prk: Signer
    early: Checkpoint  # taken after the key registration (size 25)
    held: Checkpoint  # taken after the last event: what the party holds
    receipt: dict[str, Any]
    decline_seq: int
    tmp: Path
    snapshots: dict[str, Any] = field(default_factory=dict)

    # -- raw access, as the database owner ------------------------------------------------------
    def engine(self) -> sa.Engine:
        url = self.url if "://" in self.url else f"sqlite:///{self.url}"
        return sa.create_engine(url, poolclass=sa.NullPool)

    def sql(self, *statements: str, params: Sequence[Any] | None = None) -> None:
        engine = self.engine()
        try:
            with engine.begin() as conn:
                for st in statements:
                    if params is None:
                        conn.exec_driver_sql(st)
                    else:
                        conn.exec_driver_sql(st, params)  # type: ignore[arg-type]
        finally:
            engine.dispose()

    def rows(self) -> list[tuple[Any, ...]]:
        if isinstance(self.store, MemoryStore):
            return list(self.store._rows)
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.exec_driver_sql(
                    "SELECT seq, event_id, type, round_id, offer_id, lot_id, participant, payload, actor, "
                    "recorded_at, idempotency_key, unique_slot, prev_hash, hash FROM ledger_events ORDER BY seq")]
        finally:
            engine.dispose()

    def unlock(self) -> list[str]:
        if self.backend == "sqlite":
            return ["DROP TRIGGER ledger_events_no_update", "DROP TRIGGER ledger_events_no_delete"]
        return ["ALTER TABLE ledger_events DISABLE TRIGGER USER"]

    def replace_rows(self, rows: list[tuple[Any, ...]]) -> None:
        if isinstance(self.store, MemoryStore):
            self.store._rows[:] = rows
            return
        mark = "?" if self.backend == "sqlite" else "%s"
        engine = self.engine()
        try:
            with engine.begin() as conn:
                for st in self.unlock():
                    conn.exec_driver_sql(st)
                conn.exec_driver_sql("DELETE FROM ledger_events")
                if rows:
                    conn.exec_driver_sql(f"INSERT INTO ledger_events VALUES ({', '.join([mark] * 14)})", rows)
        finally:
            engine.dispose()

    def append_raw(self, row: tuple[Any, ...]) -> None:
        if isinstance(self.store, MemoryStore):
            self.store._rows.append(row)
            return
        mark = "?" if self.backend == "sqlite" else "%s"
        self.sql(f"INSERT INTO ledger_events VALUES ({', '.join([mark] * 14)})", params=row)

    def sqlite_settle(self) -> Path:
        """Fold the WAL into the main file and release the store: the file is then the whole ledger."""
        self.store.close()
        path = Path(self.url)
        con = sqlite3.connect(path)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        return path


def rechain(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Renumber and recompute seq, prev_hash and hash: what an attacker does to hide an edit."""
    out: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for i, r in enumerate(rows, start=1):
        head = (i, *r[1:12], prev)
        prev = row_hash(head)
        out.append((*head, prev))
    return out


def appended(rows: Sequence[tuple[Any, ...]], new: NewEvent) -> tuple[Any, ...]:
    """A row for ``new`` with a correct link after ``rows``."""
    last = rows[-1]
    return new.to_row(int(last[0]) + 1, str(last[9]), str(last[13]))


def _snapshot_sqlite(path: Path, dest: Path) -> None:
    src = sqlite3.connect(path)
    dst = sqlite3.connect(dest)
    src.backup(dst)
    dst.close()
    src.close()


def build(backend: str, url: str, tmp: Path) -> Scene:
    store = open_store(url)
    ledger_key = Ed25519PrivateKey.generate()
    prk = Signer(Ed25519PrivateKey.generate())
    offers = [NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id=f"O{i}", lot_id=f"AZ-{i:03d}",
                       participant=PARTICIPANTS[i % len(PARTICIPANTS)], payload={"doses": 2400 * (i + 1)})
              for i in range(24)]
    store.append(offers)
    store.append_one(registration(prk, "PRK", "participant"))
    early = checkpoint(store, ledger_key)
    snapshots: dict[str, Any] = {"early_rows": None}
    decline = store.append_one(prk.sign(NewEvent(
        type="offer.declined", actor="PRK", round_id="R1", offer_id="O5", lot_id="AZ-007", participant="PRK",
        payload={"reason": MARKER}, unique_slot="offer:O5:response", idempotency_key="resp-O5")))
    store.append([NewEvent(type="offer.accepted", actor="secretariat", round_id="R1", offer_id=f"O{i}",
                           participant=PARTICIPANTS[i % len(PARTICIPANTS)], unique_slot=f"offer:O{i}:response")
                  for i in (0, 1, 2, 3)])
    scene = Scene(backend, url, store, ledger_key, prk, early, early, {}, decline.seq, tmp, snapshots)
    scene.snapshots["early_rows"] = scene.rows()[:early.tree_size]
    if backend == "sqlite":
        _snapshot_sqlite(Path(url), tmp / "before_last.db")
    store.append_one(NewEvent(type="round.advanced", actor="secretariat", round_id="R1", payload={"step": 1}))
    scene.held = checkpoint(store, ledger_key)
    scene.receipt = make_receipt(store, decline.seq, held=[early])
    return scene


# -- the tamper classes ----------------------------------------------------------------------------
Tamper = Callable[[Scene], None]


def t_delete_last_event(s: Scene) -> None:
    s.sql("DELETE FROM ledger_events WHERE seq = (SELECT MAX(seq) FROM ledger_events)")


def t_delete_all_events(s: Scene) -> None:
    s.sql("DELETE FROM ledger_events")


def t_update_payload(s: Scene) -> None:
    s.sql(f"UPDATE ledger_events SET payload = '{{\"reason\":\"accepted\"}}' WHERE seq = {s.decline_seq}")


def t_update_hash_column(s: Scene) -> None:
    s.sql("UPDATE ledger_events SET hash = prev_hash WHERE seq = 3")


def t_truncate_table(s: Scene) -> None:
    s.sql("TRUNCATE ledger_events")


def t_delete_checkpoints(s: Scene) -> None:
    s.sql("DELETE FROM ledger_checkpoints")


def t_update_checkpoint(s: Scene) -> None:
    s.sql("UPDATE ledger_checkpoints SET tree_size = 1")


def t_update_merkle_node(s: Scene) -> None:
    s.sql("UPDATE ledger_merkle_nodes SET hash = hash")


def t_replay_signed_event(s: Scene) -> None:
    """Record a copy of PRK's signed decline again (same event_id and slot, new seq, correct link)."""
    rows = s.rows()
    orig = next(r for r in rows if r[0] == s.decline_seq)
    row = (int(rows[-1][0]) + 1, *orig[1:12], rows[-1][13])
    s.append_raw((*row, row_hash(row)))


def t_dropped_triggers_delete_last(s: Scene) -> None:
    s.replace_rows(s.rows()[:-1])


def t_dropped_triggers_delete_all(s: Scene) -> None:
    s.replace_rows([])


def t_dropped_triggers_edit_no_rehash(s: Scene) -> None:
    rows = s.rows()
    i = s.decline_seq - 1
    rows[i] = (*rows[i][:7], '{"reason":"accepted"}', *rows[i][8:])
    s.replace_rows(rows)


def t_edit_and_recompute_chain(s: Scene) -> None:
    rows = s.rows()
    rows[2] = (*rows[2][:7], '{"doses":9999999}', *rows[2][8:])
    s.replace_rows(rechain(rows))


def t_reorder_and_recompute_chain(s: Scene) -> None:
    rows = s.rows()
    rows[3], rows[4] = rows[4], rows[3]
    s.replace_rows(rechain(rows))


def t_insert_forged_and_recompute_chain(s: Scene) -> None:
    rows = s.rows()
    forged = NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id="O99", participant="NGA",
                      payload={"doses": 1_000_000}).to_row(0, str(rows[5][9]), "")
    s.replace_rows(rechain([*rows[:6], forged, *rows[6:]]))


def t_delete_middle_and_recompute_chain(s: Scene) -> None:
    rows = s.rows()
    s.replace_rows(rechain([r for r in rows if r[0] != s.decline_seq]))


def t_delete_last_and_recompute_chain(s: Scene) -> None:
    s.replace_rows(rechain(s.rows()[:-3]))


def t_rewrite_all_and_resign_checkpoints(s: Scene) -> None:
    """Rewrite history, then issue fresh checkpoints with a new ledger key of the operator's."""
    rows = [r for r in s.rows() if r[0] != s.decline_seq]
    s.replace_rows(rechain(rows))
    if not isinstance(s.store, MemoryStore):
        s.store.close()
        s.store = open_store(s.url)
    checkpoint(s.store, Ed25519PrivateKey.generate())


def t_forged_append_correct_link(s: Scene) -> None:
    rows = s.rows()
    s.append_raw(appended(rows, NewEvent(type="offer.accepted", actor="PRK", round_id="R1", offer_id="O13",
                                         participant="PRK", unique_slot="offer:O13:response")))


def t_forged_append_through_store(s: Scene) -> None:
    """The operator appends through the normal API in PRK's name, without PRK's key."""
    s.store.append_one(NewEvent(type="offer.declined", actor="PRK", round_id="R1", offer_id="O21",
                                participant="PRK", unique_slot="offer:O21:response"))


def t_forged_append_wrong_key(s: Scene) -> None:
    rogue = Signer(Ed25519PrivateKey.generate())
    s.store.append_one(rogue.sign(NewEvent(type="offer.declined", actor="PRK", round_id="R1", offer_id="O29",
                                           participant="PRK")))


def t_forged_append_claims_prk_key_id(s: Scene) -> None:
    """A signature by another key that names PRK's key id."""
    rogue = Signer(Ed25519PrivateKey.generate())
    ev = rogue.sign(NewEvent(type="offer.declined", actor="PRK", round_id="R1", offer_id="O37", participant="PRK"))
    stamp = {**ev.payload["signature"], "key_id": s.prk.public.key_id}
    s.store.append_one(NewEvent(**{**_fields(ev), "payload": {**ev.payload, "signature": stamp}}))


def t_forged_append_reused_signature(s: Scene) -> None:
    """PRK's real signature (from its decline) pasted onto another event."""
    rows = s.rows()
    orig = json.loads(next(r for r in rows if r[0] == s.decline_seq)[7])
    s.store.append_one(NewEvent(type="offer.accepted", actor="PRK", round_id="R1", offer_id="O5", participant="PRK",
                                payload={"reason": MARKER, "signature": orig["signature"]}))


def t_rogue_key_registration(s: Scene) -> None:
    """The operator registers a key of its own for PRK, then signs in PRK's name with it."""
    rogue = Signer(Ed25519PrivateKey.generate())
    s.store.append_one(registration(rogue, "PRK", "participant", idempotency_key="rogue"))
    s.store.append_one(rogue.sign(NewEvent(type="offer.accepted", actor="PRK", round_id="R1", offer_id="O45",
                                           participant="PRK")))


def t_rogue_key_revocation(s: Scene) -> None:
    """The operator revokes PRK's key (signing with its own), then writes unsigned in PRK's name."""
    rogue = Signer(Ed25519PrivateKey.generate())
    s.store.append_one(revocation(rogue, "PRK", s.prk.public.key_id))
    s.store.append_one(NewEvent(type="offer.accepted", actor="PRK", round_id="R1", offer_id="O53",
                                participant="PRK"))


def t_edit_signed_payload_keep_signature(s: Scene) -> None:
    """Change the signed decline's content, keep PRK's signature, recompute every hash."""
    rows = s.rows()
    i = s.decline_seq - 1
    payload = json.loads(rows[i][7])
    payload["reason"] = "not PRK's words"
    rows[i] = (*rows[i][:7], json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
               *rows[i][8:])
    s.replace_rows(rechain(rows))


def t_swap_in_copy_minus_last_event(s: Scene) -> None:
    path = s.sqlite_settle()
    shutil.copyfile(s.tmp / "before_last.db", path)


def t_roll_back_file_to_older_copy(s: Scene) -> None:
    path = s.sqlite_settle()
    older = s.tmp / "older.db"
    con = sqlite3.connect(older)
    con.close()
    shutil.copyfile(s.tmp / "before_last.db", older)
    con = sqlite3.connect(older)  # an even older state: the copy, with history cut at the early checkpoint
    con.execute("DROP TRIGGER ledger_events_no_delete")
    con.execute(f"DELETE FROM ledger_events WHERE seq > {s.early.tree_size}")
    con.commit()
    con.close()
    shutil.copyfile(older, path)


def t_truncate_file_to_zero_bytes(s: Scene) -> None:
    path = s.sqlite_settle()
    path.write_bytes(b"")


def t_delete_the_file(s: Scene) -> None:
    path = s.sqlite_settle()
    path.unlink()


def t_corrupt_the_page_holding_an_event(s: Scene) -> None:
    path = s.sqlite_settle()
    data = bytearray(path.read_bytes())
    at = data.find(MARKER.encode())
    assert at > 0
    page = 4096
    start = at // page * page
    data[start + 100:start + page] = bytes(range(256)) * ((page - 100) // 256) + bytes((page - 100) % 256)
    path.write_bytes(bytes(data))


def t_flip_bytes_in_an_event(s: Scene) -> None:
    path = s.sqlite_settle()
    data = bytearray(path.read_bytes())
    at = data.find(MARKER.encode())
    data[at:at + 3] = b"XXX"
    path.write_bytes(bytes(data))


def t_postgres_restore_older_dump(s: Scene) -> None:
    """PostgreSQL's 'older copy': the table reloaded from a dump taken at the early checkpoint."""
    s.replace_rows(s.snapshots["early_rows"])


def _fields(ev: NewEvent) -> dict[str, Any]:
    return {f: getattr(ev, f) for f in ("type", "actor", "payload", "round_id", "offer_id", "lot_id", "participant",
                                         "idempotency_key", "unique_slot", "event_id")}


@dataclass(frozen=True)
class Case:
    tamper: Tamper
    backends: tuple[str, ...]
    outcome: str  # "refused" or the mechanism that detects it
    chain_alone_passes: bool = False  # does plain `verify` (hash chain, no checkpoint) miss it?


ALL, SQL = ("memory", "sqlite", "postgresql"), ("sqlite", "postgresql")
CASES = {
    # refused by the database
    "delete_last_event": Case(t_delete_last_event, SQL, "refused"),
    "delete_all_events": Case(t_delete_all_events, SQL, "refused"),
    "update_payload": Case(t_update_payload, SQL, "refused"),
    "update_hash_column": Case(t_update_hash_column, SQL, "refused"),
    "truncate_table": Case(t_truncate_table, ("postgresql",), "refused"),
    "delete_stored_checkpoints": Case(t_delete_checkpoints, SQL, "refused"),
    "update_stored_checkpoint": Case(t_update_checkpoint, SQL, "refused"),
    "update_merkle_node_cache": Case(t_update_merkle_node, SQL, "refused"),
    "replay_signed_event_copy": Case(t_replay_signed_event, SQL, "refused"),
    # detected by the hash chain
    "dropped_triggers_edit_without_rehash": Case(t_dropped_triggers_edit_no_rehash, ALL, "chain"),
    # detected only with a checkpoint held from before
    "dropped_triggers_delete_last_event": Case(t_dropped_triggers_delete_last, ALL, "checkpoint", True),
    "dropped_triggers_delete_all_events": Case(t_dropped_triggers_delete_all, ALL, "checkpoint", True),
    "delete_last_events_and_recompute_chain": Case(t_delete_last_and_recompute_chain, ALL, "checkpoint", True),
    "edit_and_recompute_chain": Case(t_edit_and_recompute_chain, ALL, "checkpoint", True),
    "reorder_and_recompute_chain": Case(t_reorder_and_recompute_chain, ALL, "checkpoint", True),
    "insert_forged_event_and_recompute_chain": Case(t_insert_forged_and_recompute_chain, ALL, "checkpoint", True),
    "delete_middle_event_and_recompute_chain": Case(t_delete_middle_and_recompute_chain, ALL, "checkpoint", True),
    "rewrite_history_and_sign_new_checkpoints": Case(t_rewrite_all_and_resign_checkpoints, ALL, "checkpoint", True),
    "swap_in_copy_minus_last_event": Case(t_swap_in_copy_minus_last_event, ("sqlite",), "checkpoint", True),
    "roll_back_file_to_older_copy": Case(t_roll_back_file_to_older_copy, ("sqlite",), "checkpoint", True),
    "restore_older_dump": Case(t_postgres_restore_older_dump, ("postgresql",), "checkpoint", True),
    "truncate_file_to_zero_bytes": Case(t_truncate_file_to_zero_bytes, ("sqlite",), "checkpoint"),
    "delete_the_file": Case(t_delete_the_file, ("sqlite",), "unreadable"),
    "corrupt_page_holding_events": Case(t_corrupt_the_page_holding_an_event, ("sqlite",), "unreadable"),
    "flip_bytes_in_stored_event": Case(t_flip_bytes_in_an_event, ("sqlite",), "chain"),
    # detected by a signature
    "forged_append_correct_link_unsigned": Case(t_forged_append_correct_link, ALL, "signature", True),
    "forged_append_through_store_unsigned": Case(t_forged_append_through_store, ALL, "signature", True),
    "forged_append_signed_by_other_key": Case(t_forged_append_wrong_key, ALL, "signature", True),
    "forged_append_claiming_actor_key_id": Case(t_forged_append_claims_prk_key_id, ALL, "signature", True),
    "forged_append_reusing_actor_signature": Case(t_forged_append_reused_signature, ALL, "signature", True),
    "rogue_key_registration_for_actor": Case(t_rogue_key_registration, ALL, "signature", True),
    "rogue_key_revocation_for_actor": Case(t_rogue_key_revocation, ALL, "signature", True),
    "edit_signed_payload_keep_signature_recompute_chain": Case(
        t_edit_signed_payload_keep_signature, ALL, "signature", True),
}


def _params() -> Iterator[Any]:
    for name, case in CASES.items():
        for backend in case.backends:
            marks = [pytest.mark.postgres] if backend == "postgresql" else []
            yield pytest.param(name, backend, id=f"{name}-{backend}", marks=marks)


@pytest.fixture
def scene_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Scene]:
    def make(backend: str) -> Scene:
        if backend == "memory":
            url = "memory"
        elif backend == "sqlite":
            url = str(tmp_path / "ledger.db")
        else:
            url = str(request.getfixturevalue("fresh_pg_url"))
        scene = build(backend, url, tmp_path)
        request.addfinalizer(scene.store.close)
        return scene

    return make


def _reopen(s: Scene) -> Store:
    if isinstance(s.store, MemoryStore):
        return s.store
    s.store.close()
    return open_store(s.url, readonly=True)


def _audit(s: Scene, held: Sequence[Checkpoint], use_stored: bool = True) -> AuditReport | LedgerError:
    try:
        store = _reopen(s)
    except LedgerError as exc:
        return exc
    try:
        return verify_ledger(store, [(f"held {c.tree_size}", c) for c in held], use_stored=use_stored)
    finally:
        if store is not s.store:
            store.close()


def _mechanisms(result: AuditReport | LedgerError) -> set[str]:
    if isinstance(result, LedgerError):
        return {"unreadable"}
    found = set()
    if result.read_error:
        found.add("unreadable")
    if not result.chain.ok:
        found.add("chain")
    if result.forged:
        found.add("signature")
    if any(not c.ok and c.source.startswith("held") for c in result.checkpoints):
        found.add("checkpoint")
    if result.empty:
        found.add("empty")
    return found


@pytest.mark.parametrize(("name", "backend"), list(_params()))
def test_tamper_is_refused_or_detected(name: str, backend: str, scene_for: Callable[[str], Scene]) -> None:
    case = CASES[name]
    s = scene_for(backend)
    assert verify_ledger(s.store, [("held", s.held)]).ok
    before = s.rows()
    if case.outcome == "refused":
        with pytest.raises(sa.exc.DBAPIError) as info:
            case.tamper(s)
        assert any(w in str(info.value) for w in ("append-only", "UNIQUE", "unique", "duplicate"))
        assert s.rows() == before
        assert verify_ledger(s.store, [("held", s.held)]).ok
        return
    case.tamper(s)
    caught = _audit(s, [s.early, s.held])
    assert case.outcome in _mechanisms(caught), (name, caught)
    assert isinstance(caught, LedgerError) or not caught.ok
    if case.chain_alone_passes:
        # what the hash chain alone (no checkpoint, no stored checkpoints, no signatures) would have said
        plain = _audit(s, [], use_stored=False)
        assert isinstance(plain, AuditReport) and plain.chain.ok


@pytest.mark.parametrize("name", ["delete_middle_event_and_recompute_chain", "dropped_triggers_delete_all_events",
                                  "edit_and_recompute_chain"])
def test_receipt_holder_detects_removal_or_rewrite(name: str, scene_for: Callable[[str], Scene]) -> None:
    """PRK kept the receipt of its decline; the operator rewrites history and offers a new signed
    checkpoint. The consistency proof from the receipt's checkpoint to the new one cannot verify."""
    s = scene_for("sqlite")
    assert verify_receipt(s.receipt, [s.early]) == []
    CASES[name].tamper(s)
    s.store.close()
    s.store = open_store(s.url)
    fresh = checkpoint(s.store, s.ledger_key)
    old = Checkpoint.from_json(s.receipt["checkpoint"])
    with pytest.raises((ProofError, LedgerError)):
        proof = ledger_tree.consistency_proof(s.store, old.tree_size, fresh.tree_size)
        verify_consistency(old.tree_size, fresh.tree_size, old.root, fresh.root, proof)


def test_matrix_counts() -> None:
    """The matrix covers every class named in the threat list, on both SQL backends where it applies."""
    runs = list(_params())
    assert len(CASES) >= 30 and len(runs) >= 70
    assert {c.outcome for c in CASES.values()} == {"refused", "chain", "checkpoint", "signature", "unreadable"}


def test_signature_b64_in_tests_is_real() -> None:
    """Guard for the forgery helpers above: a signature stamp is 64 bytes of base64."""
    signer = Signer(Ed25519PrivateKey.generate())
    ev = signer.sign(NewEvent(type="t", actor="a"))
    assert len(base64.b64decode(ev.payload["signature"]["sig"])) == 64
