"""The store protocol and the append planning shared by every backend.

Append semantics (identical on every backend):

* ``append(events)`` records a batch atomically — all events or none — after the
  current head, assigning ``seq`` (1, 2, …), ``event_id`` (unless given),
  ``recorded_at`` and the hash chain. Appends are serialised (a lock held for the
  whole transaction), so the chain never forks, even across processes.
* **Idempotency**: an event whose ``idempotency_key`` is already recorded with the
  same content is not recorded again; the stored event is returned in its place.
  The same key with different content raises :class:`~dosewise.errors.ConflictError`.
* **Unique slots**: an event whose ``unique_slot`` is already held raises
  :class:`~dosewise.errors.ConflictError` (a UNIQUE column backs this up, so it holds
  even for writers that bypass the lock).
* **Preconditions** — ``append(events, precondition=check)``: ``check(view)`` runs
  inside the lock, after idempotent replays are resolved and only if the batch
  still has something new to record; ``view`` is a :class:`LedgerView` of the
  ledger as it is at that moment. Raise (preferably ``ConflictError``) to abort:
  nothing of the batch is recorded. This is how "first answer wins" is checked
  atomically by the round layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from dosewise.errors import ConflictError, InputError
from dosewise.ledger.events import (
    GENESIS_HASH,
    Event,
    NewEvent,
    VerifyReport,
    canonical_payload,
    format_time,
)

__all__ = [
    "ExportFormat",
    "LedgerView",
    "Precondition",
    "Store",
]

ExportFormat = Literal["jsonl", "csv", "parquet"]


@runtime_checkable
class LedgerView(Protocol):
    """Read access to the ledger (a store, or the locked view a precondition receives)."""

    def head(self) -> Event | None:
        """The last event, or None for an empty ledger."""
        ...

    def read(
        self,
        after_seq: int = 0,
        *,
        round_id: str | None = None,
        offer_id: str | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[Event]:
        """Events with seq > ``after_seq`` matching the filters, in seq order (streamed)."""
        ...

    def find_slot(self, unique_slot: str) -> Event | None:
        """The event holding ``unique_slot``, if any."""
        ...


Precondition = Callable[[LedgerView], None]
"""Called inside the append lock with the current ledger; raise to abort the append."""


@runtime_checkable
class Store(LedgerView, Protocol):
    """An append-only, hash-chained event store."""

    def append(self, events: Sequence[NewEvent], *, precondition: Precondition | None = None) -> list[Event]:
        """Record a batch atomically; see the module docstring for idempotency and slots."""
        ...

    def append_one(self, event: NewEvent, *, precondition: Precondition | None = None) -> Event:
        """Record one event (same rules as :meth:`append`)."""
        ...

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the whole chain; never raises for tampering, reports it."""
        ...

    def export(self, path: str | Path, format: ExportFormat = "jsonl") -> int:
        """Write every event to ``path``; returns the number written."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def now_text() -> str:
    return format_time(datetime.now(UTC))


def plan_append(
    events: Sequence[NewEvent],
    head_seq: int,
    head_hash: str,
    by_key: Mapping[str, Event],
    by_slot: Mapping[str, Event],
    recorded_at: str,
) -> tuple[list[Event | int], list[tuple[Any, ...]]]:
    """Decide what a batch records: returns (result slots, new rows).

    Each result slot is either an already stored :class:`Event` (idempotent replay) or
    the index into the new rows. ``by_key``/``by_slot`` hold the stored events for the
    batch's idempotency keys and unique slots.
    """
    results: list[Event | int] = []
    rows: list[tuple[Any, ...]] = []
    batch_keys: dict[str, tuple[tuple[Any, ...], int]] = {}
    batch_slots: dict[str, int] = {}
    seq, prev = head_seq, head_hash
    for ev in events:
        if not isinstance(ev, NewEvent):
            raise InputError("append() takes NewEvent objects", value=repr(ev))
        text = canonical_payload(ev.payload)
        content = ev.content(text)
        key = ev.idempotency_key
        if key is not None:
            stored = by_key.get(key)
            if stored is not None:
                if content != _stored_content(stored):
                    raise ConflictError(
                        f"idempotency key {key!r} was already used for different content "
                        f"(event seq {stored.seq}, type {stored.type})"
                    )
                results.append(stored)
                continue
            if key in batch_keys:
                earlier, index = batch_keys[key]
                if earlier != content:
                    raise ConflictError(
                        f"idempotency key {key!r} used twice in one batch with different content")
                results.append(index)
                continue
        slot = ev.unique_slot
        if slot is not None:
            holder = by_slot.get(slot)
            if holder is not None:
                raise ConflictError(
                    f"{slot!r} is already taken by event seq {holder.seq} ({holder.type}"
                    + (f", participant {holder.participant}" if holder.participant else "")
                    + f", recorded {format_time(holder.recorded_at)})"
                )
            if slot in batch_slots:
                raise ConflictError(f"{slot!r} is claimed twice in one batch")
            batch_slots[slot] = len(rows)
        seq += 1
        row = ev.to_row(seq, recorded_at, prev, text)
        prev = row[13]
        if key is not None:
            batch_keys[key] = (content, len(rows))
        results.append(len(rows))
        rows.append(row)
    return results, rows


def all_replays(events: Sequence[NewEvent], by_key: Mapping[str, Event]) -> bool:
    """True when every event of the batch is already recorded, same content, under its idempotency key."""
    for e in events:
        stored = by_key.get(e.idempotency_key) if e.idempotency_key is not None else None
        if stored is None or e.content(canonical_payload(e.payload)) != _stored_content(stored):
            return False
    return True


def _stored_content(ev: Event) -> tuple[Any, ...]:
    return (ev.type, ev.round_id, ev.offer_id, ev.lot_id, ev.participant, canonical_payload(ev.payload),
            ev.actor, ev.unique_slot)


def resolve(results: list[Event | int], rows: list[tuple[Any, ...]]) -> list[Event]:
    events = [Event.from_row(r) for r in rows]
    return [r if isinstance(r, Event) else events[r] for r in results]


def head_of(head: Event | None) -> tuple[int, str]:
    return (0, GENESIS_HASH) if head is None else (head.seq, head.hash)
