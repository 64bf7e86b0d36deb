"""The ledger: an append-only, hash-chained record of events.

The ledger is generic — it knows events, not allocation rules. Open a store with
:func:`open_store` (in memory, a SQLite file, or PostgreSQL by URL), append
:class:`NewEvent` batches, read :class:`Event` objects back in order, and
:meth:`Store.verify` the chain. See :mod:`dosewise.ledger.store` for the append
semantics (idempotency keys, unique slots, preconditions evaluated under the lock).
"""

from __future__ import annotations

from dosewise.ledger.events import GENESIS_HASH, Event, NewEvent, VerifyReport, canonical_json, verify_rows
from dosewise.ledger.export import export_events, load_export
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.open import default_db, existing_db, open_store
from dosewise.ledger.store import LedgerView, Precondition, Store

__all__ = [
    "GENESIS_HASH",
    "Event",
    "LedgerView",
    "MemoryStore",
    "NewEvent",
    "Precondition",
    "Store",
    "VerifyReport",
    "canonical_json",
    "default_db",
    "existing_db",
    "export_events",
    "load_export",
    "open_store",
    "verify_rows",
]
