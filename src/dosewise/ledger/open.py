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
    """Open a ledger store.

    The schema of a SQL store is brought to the latest Alembic revision on open, unless
    ``readonly``.

    Parameters
    ----------
    url : str or pathlib.Path, optional
        ``None`` or ``"memory"``: a new in-memory store; a plain path: a SQLite file (created,
        migrated); ``sqlite:///path`` and ``postgresql://…`` (or ``postgresql+psycopg://…``) URLs:
        the SQL store.
    readonly : bool, default False
        Create, migrate and write nothing.

    Returns
    -------
    Store
        The open store; close it with ``store.close()``.

    Raises
    ------
    LedgerError
        A read-only SQLite file that does not exist, or a URL that cannot be opened.

    Examples
    --------
    >>> from dosewise import open_store
    >>> store = open_store("memory")
    >>> store.head() is None
    True
    >>> store = open_store("ledger.db")  # a SQLite file, created
    >>> store.verify().ok
    True
    >>> store.close()
    """
    if url is None or str(url) == "memory":
        from dosewise.ledger.memory import MemoryStore

        return MemoryStore()
    from dosewise.ledger.sql import SQLStore

    return SQLStore(str(url), readonly=readonly)
