"""Opening a ledger by URL: the store factory and where the default ledger lives."""

from __future__ import annotations

import os
from pathlib import Path

from dosewise.errors import LedgerError
from dosewise.ledger.store import Store

__all__ = ["default_db", "existing_db", "open_store"]


def default_db() -> str:
    """``$DOSEWISE_DB`` or ``dosewise.db`` in the current directory."""
    return os.environ.get("DOSEWISE_DB") or "dosewise.db"


def existing_db(db: str | None) -> str:
    """The ledger URL for ``db`` (default :func:`default_db`), refusing a SQLite path that does not
    exist, so that commands which only read or extend a ledger never create an empty one."""
    url = db or default_db()
    if "://" not in url and not Path(url).exists():
        raise LedgerError(f"no ledger at {url} (give --db or set DOSEWISE_DB)")
    return url


def open_store(url: str | Path | None = None, *, readonly: bool = False) -> Store:
    """Open a store.

    ``None`` or ``"memory"`` → a new in-memory store; a plain path → a SQLite file
    (created, migrated); ``sqlite:///path`` and ``postgresql://…`` (or
    ``postgresql+psycopg://…``) URLs → the SQL store. The schema is brought to the
    latest Alembic revision on open, unless ``readonly`` (then nothing is created, migrated or
    written; a missing SQLite file is a :class:`~dosewise.errors.LedgerError`).
    """
    if url is None or str(url) == "memory":
        from dosewise.ledger.memory import MemoryStore

        return MemoryStore()
    from dosewise.ledger.sql import SQLStore

    return SQLStore(str(url), readonly=readonly)
