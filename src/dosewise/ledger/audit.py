"""Verify the ledger against what the parties hold: checkpoints, receipts, signatures.

:func:`verify_ledger` walks every event once (in ranges checked by worker processes, put
together as one sequential walk would be: :mod:`dosewise.ledger.walk`) and checks, together:

* the hash chain (the first bad event as :func:`~dosewise.ledger.events.verify_rows` names it);
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
import dataclasses
import itertools
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
from dosewise.ledger.events import COLUMNS, Event, VerifyReport, canonical_payload, row_hash
from dosewise.ledger.keys import PublicKey
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.signing import KEY_REGISTERED, KEY_REVOKED, Forgery, Registry
from dosewise.ledger.store import Store
from dosewise.ledger.tree import open_view
from dosewise.ledger.walk import RANGE, KeyTimeline, RangeJob, RangeResult, check_range, merge

__all__ = ["AuditReport", "CheckpointResult", "make_receipt", "verify_ledger", "verify_receipt"]

RECEIPT = "dosewise/receipt/v1"


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


def _key_rows(store: Store) -> Iterator[Sequence[Any]]:
    """The stored rows of the key events, in seq order."""
    if isinstance(store, MemoryStore):
        with store._lock:
            rows = [r for r in store._rows if r[2] in (KEY_REGISTERED, KEY_REVOKED)]
        yield from rows
        return
    from dosewise.ledger.sql import SQLStore, _pages

    if not isinstance(store, SQLStore):
        raise LedgerError(f"cannot walk the rows of {type(store).__name__}")
    if store.readonly and store.revision is None:
        return  # no ledger tables at all (a new or emptied database file): an empty ledger
    yield from _pages(store._fetch, 0, None, None, [KEY_REGISTERED, KEY_REVOKED])


@dataclass(slots=True)
class _KeyPass:
    registry: Registry = field(default_factory=Registry)
    seqs: list[int] = field(default_factory=list)
    checked: list[int] = field(default_factory=list)
    """seq of each key event whose signature was checked."""
    forged: list[Forgery] = field(default_factory=list)


def _key_pass(store: Store) -> _KeyPass:
    """The registry built from the key events alone (they depend on nothing else), in seq order."""
    out = _KeyPass()
    for row in _key_rows(store):
        try:
            seq = int(row[0])
        except (TypeError, ValueError):
            continue  # the chain check reports it
        out.seqs.append(seq)
        try:
            ev = Event.from_row(row)
        except LedgerError as exc:
            out.forged.append(Forgery(seq, str(row[8]), str(row[2]), f"the key event cannot be read: {exc}"))
            continue
        before = out.registry.checked
        reason = out.registry.check(ev)
        if out.registry.checked > before:
            out.checked.append(seq)
        if reason is not None:
            out.forged.append(Forgery(ev.seq, ev.actor, ev.type, reason))
    return out


def _range_size(chunk: int) -> int:
    return 1 << max(int(chunk), 1).bit_length() - 1


def _jobs(store: Store, size: int, wanted: set[int], timeline: KeyTimeline) -> list[RangeJob]:
    """The ranges of ``size`` events to check, with the checkpoint sizes each must keep a root for."""
    def snaps(lo: int) -> tuple[int, ...]:
        return tuple(sorted({1, *(w - lo for w in wanted if lo < w <= lo + size)}))

    if isinstance(store, MemoryStore):
        with store._lock:
            rows = list(store._rows)
        return [RangeJob(lo, size, snaps(lo), timeline, rows=rows[lo:lo + size]) for lo in range(0, len(rows), size)]
    from dosewise.ledger.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise LedgerError(f"cannot walk the rows of {type(store).__name__}")
    if store.readonly and store.revision is None:
        return []
    with store.engine.connect() as conn:
        top = int(conn.exec_driver_sql("SELECT COALESCE(MAX(seq), 0) FROM ledger_events").scalar() or 0)
        conn.rollback()
    url = store.url.render_as_string(hide_password=False)
    return [RangeJob(lo, size, snaps(lo), timeline, url=url) for lo in range(0, top, size)]


def _local(store: Store, job: RangeJob) -> RangeJob:
    """The job with its rows read through ``store`` in this process."""
    from dosewise.ledger.sql import SQLStore

    if job.url is None or not isinstance(store, SQLStore):
        return job
    return dataclasses.replace(job, url=None, rows=itertools.islice(store.rows(job.lo, page=job.count), job.count))


def _ranges_in_process(store: Store, jobs: list[RangeJob]) -> Iterator[tuple[RangeJob, RangeResult]]:
    for job in jobs:
        yield job, check_range(_local(store, job))


def _ranges_in_pool(pool: concurrent.futures.ProcessPoolExecutor, jobs: list[RangeJob]
                    ) -> Iterator[tuple[RangeJob, RangeResult]]:
    futures = [pool.submit(check_range, job) for job in jobs]
    for job, fut in zip(jobs, futures, strict=True):
        yield job, fut.result()


def verify_ledger(store: Store, held: Iterable[tuple[str, Checkpoint]] = (), *, use_stored: bool = True,
                  allow_empty: bool = False, workers: int | None = None,
                  chunk: int = RANGE) -> AuditReport:
    """Walk the ledger once and check chain, signatures and checkpoints (see the module docstring).

    ``held``: (where it came from, checkpoint) pairs a party brings. Never raises for
    tampering or an unreadable database; everything goes into the report. The events are
    checked in ranges of ``chunk`` (rounded down to a power of two) by ``workers`` processes
    (default: one per CPU; a ledger of one range is checked in this process), see
    :mod:`dosewise.ledger.walk`.
    """
    held = list(held)
    stored: list[tuple[str, Checkpoint]] = []
    report = AuditReport(VerifyReport(True, 0, None, None), allow_empty=allow_empty)
    pool: concurrent.futures.ProcessPoolExecutor | None = None
    try:
        if use_stored:
            for i, cp in stored_checkpoints(store):
                if isinstance(cp, str):
                    report.checkpoints.append(CheckpointResult(f"stored #{i}", -1, False, cp))
                else:
                    stored.append((f"stored #{i}", cp))
        wanted = {cp.tree_size for _, cp in (*held, *stored)}
        keys = _key_pass(store)
        timeline = KeyTimeline.of(keys.registry, keys.seqs)
        size = _range_size(chunk)
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        jobs = _jobs(store, size, wanted, timeline)
        if n_workers > 1 and len(jobs) > 1:
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)))
            walk = merge(_ranges_in_pool(pool, jobs))
        else:
            walk = merge(_ranges_in_process(store, jobs))
        last = walk.last_seq
        report.chain = VerifyReport(walk.problem is None, walk.checked, walk.head_seq, walk.head_hash,
                                    None if walk.problem is None else walk.problem[0],
                                    None if walk.problem is None else walk.problem[1])
        key_forged = [f for f in keys.forged if last is None or f.seq <= last]
        report.signatures_checked = walk.signatures + sum(1 for s in keys.checked if last is None or s <= last)
        report.forged = sorted([*walk.forged, *key_forged], key=lambda f: f.seq)
        n = walk.size
        roots = walk.roots
        report.tree_size = n
        report.root_hash = roots[n].hex()
        for source, cp in held:
            report.checkpoints.append(_check(cp, source, n, roots, store if report.chain.ok else None))
        for source, cp in stored:
            report.checkpoints.append(_check(cp, source, n, roots, None))
    except (LedgerError, sa_exc.SQLAlchemyError, sqlite3.Error, psycopg.Error) as exc:
        report.read_error = str(getattr(exc, "orig", None) or exc)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return report


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
        if other.log_id != cp.log_id:
            problems.append(f"the held checkpoint of size {other.tree_size} is from a different log: it is signed by "
                            f"ledger key {other.log_id}, the receipt's log by ledger key {cp.log_id}")
            continue
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
