"""Verify the ledger against what the parties hold: checkpoints, receipts, signatures.

:func:`verify_ledger` walks every event once and checks, together:

* the hash chain (:func:`~dosewise.ledger.events.verify_rows`);
* every signature against the key registered for the event's actor at that point
  of the ledger; an event in the name of an identity with a registered key that
  lacks a valid signature is reported as *forged*;
* every checkpoint given (held by a party or a witness) and every checkpoint
  stored in the ledger: its signatures, and the root of the first ``tree_size``
  events recomputed from the events, which must equal the checkpoint's root. A
  ledger shorter than a checkpoint was truncated or rolled back; a different root
  means events up to that checkpoint were rewritten, inserted, removed or
  reordered (a fork). For held checkpoints the consistency proof from the
  checkpoint's tree to the current one (what a monitor without the events would
  check) is verified as well.

:func:`make_receipt` and :func:`verify_receipt` are the receipt (inclusion proof)
for one event and its offline check.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import exc as sa_exc

from dosewise.errors import InputError, LedgerError
from dosewise.ledger import merkle
from dosewise.ledger.checkpoints import Checkpoint, latest_covering, stored_checkpoints
from dosewise.ledger.events import COLUMNS, Event, VerifyReport, canonical_payload, row_hash, verify_rows
from dosewise.ledger.keys import PublicKey
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.signing import KEY_REGISTERED, KEY_REVOKED, Forgery, Registry
from dosewise.ledger.store import Store
from dosewise.ledger.tree import open_view

__all__ = ["AuditReport", "CheckpointResult", "make_receipt", "verify_ledger", "verify_receipt"]

RECEIPT = "dosewise/receipt/v1"
SIGNATURE_CHUNK = 5_000
"""Signatures handed to a worker process at a time (a ledger with fewer is checked in-process)."""


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    source: str
    tree_size: int
    ok: bool
    problem: str | None = None
    witnesses: tuple[str, ...] = ()


@dataclass(slots=True)
class AuditReport:
    chain: VerifyReport
    tree_size: int = 0
    root_hash: str | None = None
    signatures_checked: int = 0
    forged: list[Forgery] = field(default_factory=list)
    checkpoints: list[CheckpointResult] = field(default_factory=list)
    read_error: str | None = None
    allow_empty: bool = False

    @property
    def empty(self) -> bool:
        return self.read_error is None and self.chain.ok and self.chain.checked == 0

    @property
    def ok(self) -> bool:
        return (self.read_error is None and self.chain.ok and not self.forged
                and all(c.ok for c in self.checkpoints) and (self.allow_empty or not self.empty))

    def problems(self) -> list[str]:
        out = []
        if self.read_error:
            out.append(f"the ledger cannot be read: {self.read_error}")
        if not self.chain.ok:
            out.append(f"hash chain broken at seq {self.chain.first_bad_seq}: {self.chain.problem}")
        out.extend(f"forged event seq {f.seq} ({f.type}, actor {f.actor}): {f.reason}" for f in self.forged)
        out.extend(f"checkpoint {c.source} (size {c.tree_size}): {c.problem}" for c in self.checkpoints if not c.ok)
        if self.empty and not self.allow_empty:
            out.append("the ledger is empty (no events): nothing to verify")
        return out


def _rows(store: Store) -> Iterator[Sequence[Any]]:
    if isinstance(store, MemoryStore):
        with store._lock:
            rows = list(store._rows)
        yield from rows
        return
    from dosewise.ledger.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise LedgerError(f"cannot walk the rows of {type(store).__name__}")
    if store.readonly and store.revision is None:
        return  # no ledger tables at all (a new or emptied database file): an empty ledger
    yield from store.rows()


def _verify_chunk(tasks: list[tuple[int, bytes, bytes, bytes]]) -> list[int]:
    return [seq for seq, raw, sig, msg in tasks if not PublicKey(raw).verify(sig, msg)]


class _SignatureChecks:
    """Ed25519 checks of ordinary events, in a process pool while the walk goes on.

    Chunks of ``chunk`` signatures are handed to ``workers`` processes as they fill, so the
    hash-chain walk (one core) and the signature checks (the others) overlap. A ledger with
    fewer than one chunk of signatures is checked in this process (no pool is started).
    """

    def __init__(self, workers: int | None, chunk: int) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.chunk = chunk
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.futures: list[concurrent.futures.Future[list[int]]] = []
        self.count = 0

    def add(self, pending: list[tuple[int, bytes, bytes, bytes]]) -> None:
        self.count += len(pending)
        if self.workers <= 1:
            self.futures.append(_done(_verify_chunk(pending)))
            return
        if self.pool is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.workers)
        self.futures.append(self.pool.submit(_verify_chunk, pending))

    def finish(self, rest: list[tuple[int, bytes, bytes, bytes]]) -> list[int]:
        bad: list[int] = []
        self.count += len(rest)
        if self.pool is None:
            bad.extend(_verify_chunk(rest))
        elif rest:
            self.futures.append(self.pool.submit(_verify_chunk, rest))
        try:
            for f in self.futures:
                bad.extend(f.result())
        finally:
            self.close()
        return bad

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def _done(value: list[int]) -> concurrent.futures.Future[list[int]]:
    f: concurrent.futures.Future[list[int]] = concurrent.futures.Future()
    f.set_result(value)
    return f


def verify_ledger(store: Store, held: Iterable[tuple[str, Checkpoint]] = (), *, use_stored: bool = True,
                  allow_empty: bool = False, workers: int | None = None,
                  chunk: int = SIGNATURE_CHUNK) -> AuditReport:
    """Walk the ledger once and check chain, signatures and checkpoints (see the module docstring).

    ``held``: (where it came from, checkpoint) pairs a party brings. Never raises for
    tampering or an unreadable database; everything goes into the report. ``workers``: processes
    that check signatures (default: one per CPU), ``chunk`` signatures at a time.
    """
    held = list(held)
    stored: list[tuple[str, Checkpoint]] = []
    report = AuditReport(VerifyReport(True, 0, None, None), allow_empty=allow_empty)
    sigs = _SignatureChecks(workers, chunk)
    try:
        if use_stored:
            for i, cp in stored_checkpoints(store):
                if isinstance(cp, str):
                    report.checkpoints.append(CheckpointResult(f"stored #{i}", -1, False, cp))
                else:
                    stored.append((f"stored #{i}", cp))
        wanted = {cp.tree_size for _, cp in (*held, *stored)}
        roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        frontier = merkle.Frontier()
        registry = Registry()
        forged: list[Forgery] = []
        leaf_hash = merkle.leaf_hash
        key_types = (KEY_REGISTERED, KEY_REVOKED)

        def tap(rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
            for row in rows:
                try:
                    leaf = bytes.fromhex(row[13])
                except (TypeError, ValueError):
                    leaf = str(row[13]).encode("utf-8", "replace")
                frontier.append_hash(leaf_hash(leaf))
                if frontier.size in wanted:
                    roots[frontier.size] = frontier.root()
                if row[8] in registry.history or row[2] in key_types or '"signature"' in str(row[7]):
                    try:
                        ev = Event.from_row(row)
                    except LedgerError:
                        yield row  # verify_rows reports it
                        continue
                    reason = registry.check(ev, deferred=True)
                    if reason is not None:
                        forged.append(Forgery(ev.seq, ev.actor, ev.type, reason))
                    if len(registry.pending) >= chunk:
                        sigs.add(registry.pending)
                        registry.pending = []
                yield row

        report.chain = verify_rows(tap(_rows(store)))
        for seq in sigs.finish(registry.pending):
            forged.append(Forgery(seq, "", "", "signature does not verify (content changed after signing, "
                                               "or not signed by this key)"))
        report.signatures_checked = registry.checked + sigs.count
        report.forged = sorted(forged, key=lambda f: f.seq)
        n = frontier.size
        report.tree_size = n
        roots[n] = frontier.root()
        report.root_hash = roots[n].hex()
        for source, cp in held:
            report.checkpoints.append(_check(cp, source, n, roots, store if report.chain.ok else None))
        for source, cp in stored:
            report.checkpoints.append(_check(cp, source, n, roots, None))
    except (LedgerError, sa_exc.SQLAlchemyError, sqlite3.Error, psycopg.Error) as exc:
        report.read_error = str(getattr(exc, "orig", None) or exc)
    finally:
        sigs.close()
    if report.forged:
        _name_forgeries(store, report)
    return report


def _name_forgeries(store: Store, report: AuditReport) -> None:
    """Fill actor and type of forgeries found by the deferred signature checks."""
    missing = {f.seq for f in report.forged if not f.type}
    if not missing:
        return
    named = {}
    for ev in store.read(min(missing) - 1):
        if ev.seq in missing:
            named[ev.seq] = (ev.actor, ev.type)
        if ev.seq >= max(missing):
            break
    report.forged = [Forgery(f.seq, *named.get(f.seq, (f.actor, f.type)), f.reason) if f.seq in missing else f
                     for f in report.forged]


def _check(cp: Checkpoint, source: str, size: int, roots: Mapping[int, bytes], store: Store | None
           ) -> CheckpointResult:
    witnesses = tuple(cp.witnesses())

    def result(problem: str | None) -> CheckpointResult:
        return CheckpointResult(source, cp.tree_size, problem is None, problem, witnesses)

    bad_sigs = cp.problems()
    if bad_sigs:
        return result("; ".join(bad_sigs))
    if cp.tree_size > size:
        return result(f"the ledger holds {size} events, fewer than the {cp.tree_size} this checkpoint signed: "
                      "events were removed (truncated, rolled back or replaced by an older copy)")
    if roots.get(cp.tree_size) != cp.root:
        return result(f"the first {cp.tree_size} events no longer have the checkpoint's root: events up to "
                      f"seq {cp.tree_size} were rewritten, inserted, removed or reordered (the log forked)")
    if store is not None and size > cp.tree_size:
        try:
            with open_view(store) as view:
                proof = view.consistency(cp.tree_size, size)
            merkle.verify_consistency(cp.tree_size, size, cp.root, roots.get(size) or b"", proof)
        except (merkle.ProofError, LedgerError) as exc:
            return result(f"consistency proof to the current tree fails: {exc}")
    return result(None)


# -- receipts ------------------------------------------------------------------------------------
def find_event(store: Store, ref: str | int) -> Event:
    """An event by seq (a number) or by event_id."""
    text = str(ref).strip()
    from dosewise.ledger.sql import SQLStore

    if isinstance(store, SQLStore):
        import sqlalchemy as sa

        from dosewise.ledger.schema import EVENTS

        where = EVENTS.c.seq == int(text) if text.isdigit() else EVENTS.c.event_id == text
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(*EVENTS.c).where(where)).first()
        if row is not None:
            return Event.from_row(row)
    else:
        for ev in store.read():
            if (text.isdigit() and ev.seq == int(text)) or ev.event_id == text:
                return ev
    raise InputError("no event with this seq or event_id", field="event", value=text)


def _signer_of(store: Store, ev: Event) -> dict[str, Any] | None:
    """The registered key an event's signature is by (for the receipt), if it is signed."""
    if "signature" not in ev.payload:
        return None
    registry = Registry()
    for kev in store.read(types=[KEY_REGISTERED, KEY_REVOKED]):
        if kev.seq >= ev.seq:
            break
        registry.check(kev)
    rec = registry.key_at(ev.actor, ev.seq) if ev.type not in (KEY_REGISTERED, KEY_REVOKED) else None
    if ev.type == KEY_REGISTERED and ev.actor not in registry.active:
        key = PublicKey.from_b64(ev.payload.get("public_key"))
        return {"identity": ev.actor, "public_key": key.b64, "key_id": key.key_id, "registered_seq": ev.seq}
    if rec is None:
        rec = registry.active.get(ev.actor)
    if rec is None:
        return None
    return {"identity": rec.identity, "public_key": rec.key.b64, "key_id": rec.key.key_id,
            "registered_seq": rec.valid_from}


def make_receipt(store: Store, ref: str | int, *, held: Sequence[Checkpoint] = ()) -> dict[str, Any]:
    """A receipt for one event: the event, its inclusion proof in the tree of the latest stored
    checkpoint that covers it, that signed checkpoint, and consistency proofs from/to each
    checkpoint in ``held`` (so the party can check the receipt against what it holds, offline)."""
    ev = find_event(store, ref)
    cp = latest_covering(store, ev.seq)
    with open_view(store) as view:
        proof = view.inclusion(ev.seq - 1, cp.tree_size)
        merkle.verify_inclusion(ev.seq - 1, cp.tree_size, merkle.leaf_hash(bytes.fromhex(ev.hash)), proof, cp.root)
        links = []
        for other in held:
            lo, hi = sorted((other.tree_size, cp.tree_size))
            links.append({"from_size": lo, "to_size": hi, "proof": [p.hex() for p in view.consistency(lo, hi)]})
    out: dict[str, Any] = {
        "receipt": RECEIPT, "event": ev.to_dict(), "leaf_index": ev.seq - 1, "tree_size": cp.tree_size,
        "inclusion_proof": [p.hex() for p in proof], "checkpoint": cp.to_json(), "consistency": links,
    }
    signer = _signer_of(store, ev)
    if signer is not None:
        out["signer"] = signer
    return out


def verify_receipt(receipt: Any, held: Sequence[Checkpoint] = ()) -> list[str]:
    """Check a receipt offline; returns the problems found (empty: the event is in the log the
    receipt's checkpoint signed, and that log is consistent with every held checkpoint)."""
    if not isinstance(receipt, Mapping) or receipt.get("receipt") != RECEIPT:
        return ["not a dosewise receipt"]
    problems: list[str] = []
    try:
        ev = receipt["event"]
        row = tuple(canonical_payload(ev[c]) if c == "payload" else ev[c] for c in COLUMNS)
        index, size = int(receipt["leaf_index"]), int(receipt["tree_size"])
        proof = [bytes.fromhex(p) for p in receipt["inclusion_proof"]]
        cp = Checkpoint.from_json(receipt["checkpoint"])
    except (KeyError, TypeError, ValueError, InputError) as exc:
        return [f"the receipt is malformed: {exc}"]
    if row_hash(row) != row[13]:
        problems.append("the event's content does not match its hash")
    if index != int(row[0]) - 1 or size != cp.tree_size:
        problems.append("the receipt's leaf index or tree size does not match its event or checkpoint")
    problems.extend(f"the receipt's checkpoint: {p}" for p in cp.problems())
    try:
        merkle.verify_inclusion(index, size, merkle.leaf_hash(bytes.fromhex(str(row[13]))), proof, cp.root)
    except (merkle.ProofError, ValueError) as exc:
        problems.append(f"inclusion proof: {exc}")
    problems.extend(_receipt_signature(receipt, ev))
    links = receipt.get("consistency") or []
    for other in held:
        problems.extend(f"held checkpoint (size {other.tree_size}): {p}" for p in other.problems())
        if other.tree_size == cp.tree_size:
            if other.root != cp.root:
                problems.append(f"held checkpoint of size {other.tree_size} has another root than the receipt's: "
                                "the log forked")
            continue
        lo, hi = sorted((other.tree_size, cp.tree_size))
        link = next((x for x in links if isinstance(x, Mapping) and x.get("from_size") == lo
                     and x.get("to_size") == hi), None)
        if link is None:
            problems.append(f"the receipt carries no consistency proof between sizes {lo} and {hi}; "
                            "ask for a receipt made with this checkpoint (ledger prove --checkpoint)")
            continue
        roots = {other.tree_size: other.root, cp.tree_size: cp.root}
        try:
            merkle.verify_consistency(lo, hi, roots[lo], roots[hi], [bytes.fromhex(p) for p in link["proof"]])
        except (merkle.ProofError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"consistency with held checkpoint of size {other.tree_size}: {exc}")
    return problems


def _receipt_signature(receipt: Mapping[str, Any], ev: Mapping[str, Any]) -> list[str]:
    payload = ev.get("payload")
    if not isinstance(payload, Mapping) or "signature" not in payload:
        return []
    signer = receipt.get("signer")
    if not isinstance(signer, Mapping):
        return ["the event is signed but the receipt names no registered key"]
    from dosewise.ledger.signing import _signable

    try:
        key = PublicKey.from_b64(signer.get("public_key"))
        stamp = payload["signature"]
        sig = base64.b64decode(str(stamp["sig"]).encode("ascii"), validate=True)
        message = _signable(ev["event_id"], ev["type"], ev["actor"], ev["round_id"], ev["offer_id"], ev["lot_id"],
                            ev["participant"], payload, ev["idempotency_key"], ev["unique_slot"])
    except (InputError, KeyError, TypeError, binascii.Error) as exc:
        return [f"the event's signature cannot be read: {exc}"]
    if stamp.get("key_id") != key.key_id or not key.verify(sig, message):
        return [f"the event's signature does not verify with key {key.key_id}"]
    return []


def read_receipt(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("no receipt file here", file=str(path)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("not a JSON receipt", file=str(path)) from exc
