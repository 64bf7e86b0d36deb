"""Create the append-only ledger_events table, its indexes and the triggers that forbid changes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MESSAGE = "ledger_events is append-only"

_SQLITE = [
    f"""CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
        BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: UPDATE refused'); END""",
    f"""CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
        BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: DELETE refused'); END""",
]

# exec_driver_sql with psycopg 3: a literal percent sign would have to be written %%; none is used.
_POSTGRES = [
    f"""CREATE FUNCTION ledger_events_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{_MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$""".replace("%", "%%"),
    """CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
        FOR EACH ROW EXECUTE FUNCTION ledger_events_refuse()""",
    """CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
        FOR EACH ROW EXECUTE FUNCTION ledger_events_refuse()""",
    """CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON ledger_events
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_refuse()""",
]


def upgrade() -> None:
    op.create_table(
        "ledger_events",
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
    )
    op.create_index("ix_ledger_events_round_id", "ledger_events", ["round_id", "seq"])
    op.create_index("ix_ledger_events_offer_id", "ledger_events", ["offer_id", "seq"])
    op.create_index("ix_ledger_events_type", "ledger_events", ["type", "seq"])
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": _SQLITE, "postgresql": _POSTGRES}.get(dialect)
    if statements is None:
        raise RuntimeError(f"the ledger supports SQLite and PostgreSQL, not {dialect}")
    for statement in statements:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TABLE ledger_events")
        op.execute("DROP FUNCTION ledger_events_refuse()")
    else:
        op.drop_table("ledger_events")
