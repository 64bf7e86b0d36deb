"""Group commit: single-event appends from many threads of one process, recorded in shared batches.

Each append to a SQL ledger takes the ledger's write lock for a few round trips to the
database, so appends one at a time cap a busy server at a few hundred events per second.
:class:`GroupCommit` wraps a store: while one thread writes, the events other threads hand to
:meth:`append_one` wait and are then written together as one batch (one lock, one commit) by
one of the waiting threads: a thread writes one batch and hands over, so none is kept writing
other callers' batches once its own event is recorded. Each caller still gets its own event
back, or its own error: when a batch is refused (one event's unique slot is taken, say), its
events are appended again one by one, so the others are recorded and only the offending one
fails. Appends with a precondition, and batches, go
straight to the store (through the guard below).

A ``guard`` (a :data:`~dosewise.ledger.store.Precondition`) runs inside each batch's write lock,
before anything is inserted: a server passes its chain check there, so the check sees exactly the
head the batch is appended to, once per batch instead of once per event. ``on_written`` is told
of each batch recorded (its last event), e.g. to move the point the next check starts from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from dosewise.ledger.events import Event, NewEvent, VerifyReport
from dosewise.ledger.store import ExportFormat, LedgerView, Precondition, Store

__all__ = ["GroupCommit"]


class GroupCommit:
    """A :class:`~dosewise.ledger.Store` whose concurrent single appends share batches."""

    def __init__(self, store: Store, *, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self.guard: Precondition | None = None
        self.on_written: Callable[[Event], None] | None = None
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[tuple[NewEvent, Future[Event]]] = []
        self._writing = False

    def __getattr__(self, name: str) -> Any:  # e.g. the SQL store's engine
        return getattr(self.store, name)

    # -- writing -------------------------------------------------------------------------------
    def append_one(self, event: NewEvent, *, precondition: Precondition | None = None) -> Event:
        if precondition is not None:
            return self.append([event], precondition=precondition)[0]
        future: Future[Event] = Future()
        with self._cond:
            self._pending.append((event, future))
        while True:
            with self._cond:
                while self._writing and not future.done():
                    self._cond.wait()
                if future.done():
                    return future.result()
                # no batch is being written: this thread writes what waits (its own event among it),
                # one batch only, then hands over, so no caller waits on others' batches after its own
                self._writing = True
                batch = self._pending[:self.max_batch]
                del self._pending[:self.max_batch]
            try:
                self._write(batch)
            except BaseException as exc:  # e.g. an interrupt: no caller of the batch is left waiting
                for _, waiting in batch:
                    if not waiting.done():
                        waiting.set_exception(exc)
                raise
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, batch: list[tuple[NewEvent, Future[Event]]]) -> None:
        try:
            events = self.append([e for e, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for event, future in batch:  # one by one: only the offending events fail
                try:
                    future.set_result(self.append([event])[0])
                except Exception as one:  # reaches its own caller, never the other writers
                    future.set_exception(one)
            return
        for (_, future), ev in zip(batch, events, strict=True):
            future.set_result(ev)

    def append(self, events: Sequence[NewEvent], *, precondition: Precondition | None = None) -> list[Event]:
        guard = self.guard
        if guard is None:
            return self.store.append(events, precondition=precondition)
        checked: list[bool] = []

        def check(view: LedgerView) -> None:  # runs only when the batch records something new
            guard(view)
            if precondition is not None:
                precondition(view)
            checked.append(True)

        stored = self.store.append(events, precondition=check)
        if checked and stored and self.on_written is not None:
            self.on_written(max(stored, key=lambda ev: ev.seq))  # a new row: replays lie below the head
        return stored

    # -- reading and the rest: the store's own -------------------------------------------------
    def head(self) -> Event | None:
        return self.store.head()

    def read(self, after_seq: int = 0, *, round_id: str | None = None, offer_id: str | None = None,
             types: Sequence[str] | None = None) -> Iterator[Event]:
        return self.store.read(after_seq, round_id=round_id, offer_id=offer_id, types=types)

    def find_slot(self, unique_slot: str) -> Event | None:
        return self.store.find_slot(unique_slot)

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        return self.store.verify(expected_head=expected_head)

    def export(self, path: str | Path, format: ExportFormat = "jsonl") -> int:
        return self.store.export(path, format)

    def close(self) -> None:
        self.store.close()
