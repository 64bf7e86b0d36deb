"""Create the identities table: API keys (hashed), their role and participant, revocation.

Kept outside the hash-chained events: a key's secret hash must never enter the ledger, and a
revoked key is marked here (its creation and revocation are also recorded as events, without
the secret).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("participant", sa.Text),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("identities")
