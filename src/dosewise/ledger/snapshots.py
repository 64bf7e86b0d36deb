"""Snapshots of a round's projection, so a long round opens without replaying every event.

A snapshot is the round's state after event ``seq`` (JSON text), stored with the chain hash of
that event and the SHA-256 of the text, in an append-only table. Loading one checks both: the event
at ``seq`` must still carry ``chain_hash`` (so the snapshot belongs to this chain, not a rewritten
one) and the text must hash to ``body_sha256``; anything else is ignored and the round is replayed
in full. ``ledger verify`` compares every stored snapshot with a full replay.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.schema import EVENTS, SNAPSHOTS
from dosewise.ledger.store import LedgerView, Store

__all__ = ["all_snapshots", "latest", "save"]


def _sha(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def save(store: Store, round_id: str, seq: int, chain_hash: str, body: str) -> None:
    """Store a snapshot (a second one for the same round and seq is ignored)."""
    row = {"round_id": round_id, "seq": seq, "chain_hash": chain_hash, "body_sha256": _sha(body), "body": body}
    if isinstance(store, MemoryStore):
        snaps: dict[tuple[str, int], dict[str, Any]] = store.__dict__.setdefault("round_snapshots", {})
        snaps.setdefault((round_id, seq), row)
        return
    engine = getattr(store, "engine", None)
    if engine is None:
        return
    with engine.begin() as conn:
        exists = conn.execute(sa.select(SNAPSHOTS.c.seq).where(
            (SNAPSHOTS.c.round_id == round_id) & (SNAPSHOTS.c.seq == seq))).first()
        if exists is None:
            conn.execute(SNAPSHOTS.insert().values(**row))


def _rows(store: Store, round_id: str | None) -> list[dict[str, Any]]:
    if isinstance(store, MemoryStore):
        snaps: dict[tuple[str, int], dict[str, Any]] = store.__dict__.get("round_snapshots", {})
        return [r for (rid, _), r in sorted(snaps.items()) if round_id is None or rid == round_id]
    engine = getattr(store, "engine", None)
    if engine is None:
        return []
    q = sa.select(SNAPSHOTS).order_by(SNAPSHOTS.c.round_id, SNAPSHOTS.c.seq)
    if round_id is not None:
        q = q.where(SNAPSHOTS.c.round_id == round_id)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(SNAPSHOTS.name):
            return []
        return [dict(r._mapping) for r in conn.execute(q)]


def latest(store: Store, view: LedgerView, round_id: str) -> tuple[int, str] | None:
    """The newest snapshot of ``round_id`` that still belongs to this chain: (seq, body), or None.

    Candidates are tried newest first, and only the one returned has its body read: the event at
    its ``seq`` must still carry its ``chain_hash``, then its body must hash to ``body_sha256``."""
    for seq, chain_hash, body_sha256 in _candidates(store, round_id):
        if _hash_at(store, view, seq) != chain_hash:
            continue
        body = _body(store, round_id, seq)
        if body is not None and _sha(body) == body_sha256:
            return seq, body
    return None


def _candidates(store: Store, round_id: str) -> list[tuple[int, str, str]]:
    """(seq, chain_hash, body_sha256) of the round's snapshots, newest first, without their bodies."""
    if isinstance(store, MemoryStore) or getattr(store, "engine", None) is None:
        return [(int(r["seq"]), str(r["chain_hash"]), str(r["body_sha256"]))
                for r in reversed(_rows(store, round_id))]
    q = (sa.select(SNAPSHOTS.c.seq, SNAPSHOTS.c.chain_hash, SNAPSHOTS.c.body_sha256)
         .where(SNAPSHOTS.c.round_id == round_id).order_by(SNAPSHOTS.c.seq.desc()))
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        if not sa.inspect(conn).has_table(SNAPSHOTS.name):
            return []
        return [(int(seq), str(chain), str(sha)) for seq, chain, sha in conn.execute(q)]


def _body(store: Store, round_id: str, seq: int) -> str | None:
    if isinstance(store, MemoryStore) or getattr(store, "engine", None) is None:
        return next((str(r["body"]) for r in _rows(store, round_id) if int(r["seq"]) == seq), None)
    q = sa.select(SNAPSHOTS.c.body).where((SNAPSHOTS.c.round_id == round_id) & (SNAPSHOTS.c.seq == seq))
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        body = conn.execute(q).scalar()
    return None if body is None else str(body)


def _hash_at(store: Store, view: LedgerView, seq: int) -> str | None:
    """The chain hash of event ``seq`` (one row read by its key, not a page of events)."""
    engine = getattr(store, "engine", None)
    if view is store and engine is not None and not isinstance(store, MemoryStore):
        with engine.connect() as conn:
            found = conn.execute(sa.select(EVENTS.c.hash).where(EVENTS.c.seq == seq)).scalar()
        return None if found is None else str(found)
    ev = next(iter(view.read(after_seq=seq - 1)), None)
    return ev.hash if ev is not None and ev.seq == seq else None


def all_snapshots(store: Store) -> list[dict[str, Any]]:
    """Every stored snapshot (round_id, seq, chain_hash, body_sha256, body), for verification."""
    return _rows(store, None)
