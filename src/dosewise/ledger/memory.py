"""In-memory store: the same semantics as the SQL store, for fast tests.

Rows are kept in their stored form (payload as canonical JSON text), so tests can
tamper with ``_rows`` the way an attacker edits a table, and :meth:`verify` sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dosewise.errors import LedgerError
from dosewise.ledger.events import Event, NewEvent, VerifyReport, verify_rows
from dosewise.ledger.export import export_events
from dosewise.ledger.store import (
    ExportFormat,
    Precondition,
    all_replays,
    head_of,
    now_text,
    plan_append,
    resolve,
)

__all__ = ["MemoryStore"]


class _MemoryView:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def head(self) -> Event | None:
        return self._store.head()

    def read(self, after_seq: int = 0, *, round_id: str | None = None, offer_id: str | None = None,
             types: Sequence[str] | None = None) -> Iterator[Event]:
        return self._store.read(after_seq, round_id=round_id, offer_id=offer_id, types=types)

    def find_slot(self, unique_slot: str) -> Event | None:
        return self._store.find_slot(unique_slot)


class MemoryStore:
    """A store held in a Python list; thread-safe, not shared across processes."""

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        self._keys: dict[str, int] = {}  # idempotency key -> index in _rows
        self._slots: dict[str, int] = {}  # unique slot -> index in _rows
        self._lock = threading.RLock()
        self._closed = False
        # Merkle node cache and checkpoint bodies (see dosewise.ledger.tree / .checkpoints)
        self.merkle_nodes: dict[tuple[int, int], bytes] = {}
        self.checkpoint_bodies: list[str] = []

    def _check(self) -> None:
        if self._closed:
            raise LedgerError("the ledger store is closed")

    def append(self, events: Sequence[NewEvent], *, precondition: Precondition | None = None) -> list[Event]:
        self._check()
        with self._lock:
            keys = {e.idempotency_key for e in events if e.idempotency_key}
            slots = {e.unique_slot for e in events if e.unique_slot}
            by_key = {k: Event.from_row(self._rows[self._keys[k]]) for k in keys if k in self._keys}
            by_slot = {s: Event.from_row(self._rows[self._slots[s]]) for s in slots if s in self._slots}
            # replays need no precondition; anything new does
            if precondition is not None and not all_replays(events, by_key):
                precondition(_MemoryView(self))
            results, rows = plan_append(events, *head_of(self.head()), by_key, by_slot, now_text())
            for i, row in enumerate(rows, start=len(self._rows)):
                if row[10] is not None:
                    self._keys[row[10]] = i
                if row[11] is not None:
                    self._slots[row[11]] = i
            self._rows.extend(rows)
            return resolve(results, rows)

    def append_one(self, event: NewEvent, *, precondition: Precondition | None = None) -> Event:
        return self.append([event], precondition=precondition)[0]

    def head(self) -> Event | None:
        self._check()
        with self._lock:
            return Event.from_row(self._rows[-1]) if self._rows else None

    def read(self, after_seq: int = 0, *, round_id: str | None = None, offer_id: str | None = None,
             types: Sequence[str] | None = None) -> Iterator[Event]:
        self._check()
        wanted = set(types) if types is not None else None
        rows = self._rows
        i = max(after_seq, 0)  # rows[k] holds seq k + 1
        while i < len(rows):
            row = rows[i]
            i += 1
            if (row[0] > after_seq and (round_id is None or row[3] == round_id)
                    and (offer_id is None or row[4] == offer_id) and (wanted is None or row[2] in wanted)):
                yield Event.from_row(row)

    def find_slot(self, unique_slot: str) -> Event | None:
        self._check()
        index = self._slots.get(unique_slot)
        return None if index is None else Event.from_row(self._rows[index])

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        self._check()
        with self._lock:
            rows = list(self._rows)
        return verify_rows(rows, expected_head=expected_head)

    def export(self, path: str | Path, format: ExportFormat = "jsonl") -> int:
        return export_events(self.read(), path, format)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

