"""Refuse at write time what ``ledger verify`` would report as forged.

``ledger verify`` judges every event by :meth:`~dosewise.ledger.signing.Registry.check`: once an
identity has registered a signing key, each later event in its name (``actor``) must carry a valid
signature by the key active at that point, and a new key for it must be signed by the current one.
:class:`SignatureGate` wraps a store and runs that same check on each event of a batch before the
batch is appended, against the registry built from the key events already recorded; an event it
would report is refused (:class:`~dosewise.errors.ForbiddenError`, one line saying what to do) and
nothing of the batch is recorded. So a write and a later ``verify`` agree.

One rule is stricter than ``verify``: an event recorded through a service API key names the key's
identity (``role:NAME:key id``), not ``NAME``, so ``verify`` does not hold it to NAME's signing key.
Such an event speaking for a NAME that has registered a signing key is refused too: it cannot carry
NAME's signature, and NAME has said that only signed decisions are its own.

The registry is read from the key events (an indexed query of the rows recorded since the last
read) outside the store's write lock, before a batch when the last read is older than
``refresh_every`` seconds (default 1 s), and always before the first batch and after a batch of this
gate's own that held a key event. So a key registered through this gate binds its next write, and a
key registered by another writer binds this gate's writes at most ``refresh_every`` seconds later; a
write in that moment is not refused here, and ``verify`` still reports it. A long-lived server
then pays one query a second for this check instead of one per answer.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from dosewise.errors import ForbiddenError, LedgerError
from dosewise.ledger.events import GENESIS_HASH, Event, NewEvent, canonical_payload
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.signing import KEY_REGISTERED, KEY_REVOKED, Registry, _stamp
from dosewise.ledger.store import Precondition, Store, now_text

__all__ = ["SignatureGate", "key_rows", "refusal", "speaks_for"]

_KEY_TYPES = (KEY_REGISTERED, KEY_REVOKED)


def key_rows(store: Any, after_seq: int = 0) -> Iterator[Sequence[Any]]:
    """The stored rows of the key events with seq > ``after_seq``, in seq order."""
    inner = getattr(store, "store", None)
    if inner is not None and not isinstance(store, MemoryStore):  # a wrapper (group commit, gate)
        yield from key_rows(inner, after_seq)
        return
    if isinstance(store, MemoryStore):
        with store._lock:
            rows = [r for r in store._rows[after_seq:] if r[2] in _KEY_TYPES]
        yield from rows
        return
    from dosewise.ledger.sql import SQLStore, _pages

    if not isinstance(store, SQLStore):
        raise LedgerError(f"cannot read the key events of {type(store).__name__}")
    if store.readonly and store.revision is None:
        return
    yield from _pages(store._fetch, after_seq, None, None, list(_KEY_TYPES))


def speaks_for(actor: str) -> str | None:
    """The identity a service API key's actor (``role:NAME:key id``) speaks for, else None."""
    parts = actor.split(":")
    if len(parts) == 3 and all(parts):
        return parts[1]
    return None


def refusal(registry: Registry, ev: Event) -> str | None:
    """Why ``ev`` may not be recorded (the rule of :meth:`Registry.check`, said for the writer), or
    None. Applies a key event to ``registry`` when it passes, like ``verify`` does."""
    current = registry.active.get(ev.actor)
    if ev.type not in _KEY_TYPES:
        named = speaks_for(ev.actor)
        if current is None and named is not None and named in registry.active:
            key = registry.active[named]
            return (f"{named} has registered a signing key (key id {key.key.key_id}, seq {key.valid_from}): a "
                    f"decision in its name must carry its signature, which an API-key request cannot; record it "
                    f"with `--sign-with KEYFILE` (e.g. `dosewise round respond … --sign-with KEYFILE`)")
    reason = registry.check(ev)
    if reason is None:
        return None
    stamp = _stamp(ev.payload) if "signature" in ev.payload else None
    signer = stamp[0] if isinstance(stamp, tuple) else None
    if ev.type == KEY_REGISTERED and ev.payload.get("identity") == ev.actor:
        if current is not None and signer != current.key.key_id:
            return (f"{ev.actor} already has a registered key (key id {current.key.key_id}, seq "
                    f"{current.valid_from}): a new key must be signed by it; register with --sign-with "
                    f"CURRENT_KEYFILE" + (f" (this one is signed by key {signer})" if signer else ""))
        if ev.actor not in registry.history and signer is not None and signer != ev.payload.get("key_id"):
            return (f"{ev.actor} has no key yet: its first key signs its own registration (proof that the "
                    f"party holds it); leave out --sign-with")
    if ev.type in _KEY_TYPES or current is None:
        return reason
    kid = current.key.key_id
    what = {"lot.donated": "donation", "round.approved": "approval"}.get(
        ev.type, "answer" if ev.type.startswith(("offer.", "transfer.")) else f"event ({ev.type})")
    if "signature" not in ev.payload:
        return (f"{ev.actor} has registered a signing key (key id {kid}, seq {current.valid_from}): sign the "
                f"{what} with --sign-with KEYFILE (the private key file of that key)")
    if signer is not None and signer != kid:
        return (f"the signature is by key {signer}, not {ev.actor}'s registered key {kid}: sign with "
                f"{ev.actor}'s own key file")
    return f"the signature does not verify against {ev.actor}'s registered key {kid}: {reason}"


class SignatureGate:
    """A :class:`~dosewise.ledger.Store` whose appends refuse what ``verify`` would call forged (see
    the module docstring); everything else is the wrapped store's."""

    def __init__(self, store: Store, *, refresh_every: float = 1.0) -> None:
        self.store = store
        self.refresh_every = refresh_every
        self._registry = Registry()
        self._seen = 0
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def registry(self) -> Registry:
        """The key registry as recorded now (a copy the caller may change)."""
        return copy.deepcopy(self._current())

    def _current(self) -> Registry:
        """The key registry as recorded now, shared: never changed once returned (key events read
        later go into a new copy), so it is read without a lock and without copying."""
        with self._lock:
            if time.monotonic() - self._read_at < self.refresh_every:
                return self._registry
            self._read_at = time.monotonic()
            fresh: Registry | None = None
            for row in key_rows(self.store, self._seen):
                try:
                    ev = Event.from_row(row)
                except LedgerError:
                    continue  # unreadable: verify reports it; it registers nothing
                if fresh is None:
                    fresh = copy.deepcopy(self._registry)
                fresh.check(ev)
                self._seen = max(self._seen, ev.seq)
            if fresh is not None:
                self._registry = fresh
            return self._registry

    def check(self, events: Sequence[NewEvent]) -> None:
        """Raise :class:`ForbiddenError` for the first event of the batch ``verify`` would report."""
        if not events:
            return
        registry = self._current()
        if any(e.type in _KEY_TYPES or "signature" in e.payload for e in events):
            registry = copy.deepcopy(registry)  # checking these applies them (key events) or counts them
        recorded_at = now_text()
        for i, new in enumerate(events):
            if not registry.history and new.type not in _KEY_TYPES and "signature" not in new.payload:
                continue  # no identity has a key (so none is active): nothing can refuse an unsigned event
            ev = Event.from_row(new.to_row(self._seen + i + 1, recorded_at, GENESIS_HASH,
                                           canonical_payload(new.payload)))
            problem = refusal(registry, ev)
            if problem is not None:
                raise ForbiddenError(f"{problem}; nothing recorded")

    def _written(self, events: Sequence[NewEvent]) -> None:
        """After a batch with a key event, read the registry again before the next batch."""
        if any(e.type in _KEY_TYPES for e in events):
            with self._lock:
                self._read_at = -math.inf

    def append(self, events: Sequence[NewEvent], *, precondition: Precondition | None = None) -> list[Event]:
        events = list(events)
        self.check(events)
        try:
            return self.store.append(events, precondition=precondition)
        finally:
            self._written(events)

    def append_one(self, event: NewEvent, *, precondition: Precondition | None = None) -> Event:
        self.check([event])
        try:
            return self.store.append_one(event, precondition=precondition)
        finally:
            self._written([event])
