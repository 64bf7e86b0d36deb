"""The events table as SQLAlchemy Core sees it (created by the Alembic migrations)."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["CHECKPOINTS", "EVENTS", "HEAD_REVISION", "MERKLE_NODES", "METADATA", "SNAPSHOTS", "VERSION_TABLE"]

HEAD_REVISION = "0003"
"""The latest migration; a database at this revision is not migrated again on open."""

VERSION_TABLE = "dosewise_ledger_version"
"""Alembic's version table for the ledger (its own name, so other schemas can share the database)."""

METADATA = sa.MetaData()

EVENTS = sa.Table(
    "ledger_events",
    METADATA,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("round_id", sa.Text),
    sa.Column("offer_id", sa.Text),
    sa.Column("lot_id", sa.Text),
    sa.Column("participant", sa.Text),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("unique_slot", sa.Text),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.UniqueConstraint("event_id", name="uq_ledger_events_event_id"),
    sa.UniqueConstraint("idempotency_key", name="uq_ledger_events_idempotency_key"),
    sa.UniqueConstraint("unique_slot", name="uq_ledger_events_unique_slot"),
    sa.Index("ix_ledger_events_round_id", "round_id", "seq"),
    sa.Index("ix_ledger_events_offer_id", "offer_id", "seq"),
    sa.Index("ix_ledger_events_type", "type", "seq"),
)

MERKLE_NODES = sa.Table(
    "ledger_merkle_nodes",
    METADATA,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)
"""Hashes of the complete subtrees (level >= 4) of the Merkle tree over the events: a cache that
makes proofs fast; ``verify`` never trusts it (it recomputes the tree from the events)."""

CHECKPOINTS = sa.Table(
    "ledger_checkpoints",
    METADATA,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_ledger_checkpoints_tree_size", "tree_size"),
)
"""Signed checkpoints (append-only): ``body`` is the checkpoint file's JSON text."""

SNAPSHOTS = sa.Table(
    "ledger_round_snapshots",
    METADATA,
    sa.Column("round_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("chain_hash", sa.Text, nullable=False),
    sa.Column("body_sha256", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
"""Snapshots of a round's projection (append-only): ``body`` is the state after event ``seq``, whose
chain hash was ``chain_hash``. A cache for opening a long round fast; never trusted without checks."""
