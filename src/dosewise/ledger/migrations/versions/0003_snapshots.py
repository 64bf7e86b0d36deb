"""Snapshots of round projections, append-only like the events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE = "ledger_round_snapshots"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("chain_hash", sa.Text, nullable=False),
        sa.Column("body_sha256", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        statements = [
            f"""CREATE TRIGGER {_TABLE}_no_update BEFORE UPDATE ON {_TABLE}
                BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only: UPDATE refused'); END""",
            f"""CREATE TRIGGER {_TABLE}_no_delete BEFORE DELETE ON {_TABLE}
                BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only: DELETE refused'); END""",
        ]
    else:  # the refusing function comes with revision 0002
        statements = [
            f"""CREATE TRIGGER {_TABLE}_no_update BEFORE UPDATE ON {_TABLE}
                FOR EACH ROW EXECUTE FUNCTION ledger_append_only_refuse()""",
            f"""CREATE TRIGGER {_TABLE}_no_delete BEFORE DELETE ON {_TABLE}
                FOR EACH ROW EXECUTE FUNCTION ledger_append_only_refuse()""",
            f"""CREATE TRIGGER {_TABLE}_no_truncate BEFORE TRUNCATE ON {_TABLE}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only_refuse()""",
        ]
    for statement in statements:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    op.drop_table(_TABLE)
