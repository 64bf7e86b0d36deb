"""Alembic environment for the ledger: runs on the connection the store hands over.

The store passes an open connection (already inside its transaction, and on
PostgreSQL holding an advisory lock) in ``config.attributes["connection"]``;
used from the command line, ``sqlalchemy.url`` in alembic.ini is used instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from dosewise.ledger.schema import METADATA, VERSION_TABLE

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///dosewise.db")
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
