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
from dosewise.ledger.schema import SNAPSHOTS
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
    """The newest snapshot of ``round_id`` that still belongs to this chain: (seq, body), or None."""
    for row in reversed(_rows(store, round_id)):
        if _sha(row["body"]) != row["body_sha256"]:
            continue
        ev = next(iter(view.read(after_seq=int(row["seq"]) - 1)), None)
        if ev is not None and ev.seq == int(row["seq"]) and ev.hash == row["chain_hash"]:
            return int(row["seq"]), str(row["body"])
    return None


def all_snapshots(store: Store) -> list[dict[str, Any]]:
    """Every stored snapshot (round_id, seq, chain_hash, body_sha256, body), for verification."""
    return _rows(store, None)
