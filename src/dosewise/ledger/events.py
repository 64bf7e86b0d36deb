"""Ledger events, their canonical form and the hash chain.

An event's hash is the SHA-256 (hex) of its *canonical JSON*: every field except
``hash`` itself (``prev_hash`` included), serialised with sorted keys, no
whitespace and UTF-8 without ASCII escaping — exactly what
``json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
produces. The first event's ``prev_hash`` is 64 zeros (:data:`GENESIS_HASH`).

Payloads hold JSON values only: objects with string keys, arrays, strings,
integers in the signed 64-bit range, booleans and null. **Floats are refused**
(their text form differs between languages and databases, which would make the
hash unreproducible outside Python): pass amounts as integers (doses) and
fractions as strings (``"0.25"``) or as integers in a stated unit.

The payload is stored as its canonical JSON text, so :func:`verify_rows` hashes
what is stored byte for byte, without parsing it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from dosewise.errors import InputError, IntegrityError

__all__ = [
    "COLUMNS",
    "GENESIS_HASH",
    "Event",
    "NewEvent",
    "VerifyReport",
    "canonical_json",
    "canonical_payload",
    "format_time",
    "link_problem",
    "row_hash",
    "seq_problem",
    "verify_rows",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event."""

COLUMNS: tuple[str, ...] = (
    "seq",
    "event_id",
    "type",
    "round_id",
    "offer_id",
    "lot_id",
    "participant",
    "payload",
    "actor",
    "recorded_at",
    "idempotency_key",
    "unique_slot",
    "prev_hash",
    "hash",
)
"""Order of the fields in a stored row (``payload`` as canonical JSON text)."""

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

Row = Sequence[Any]


def _check_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InputError("integers in a payload must fit in 64 bits", field=path, value=value)
        return
    if isinstance(value, float):
        raise InputError(
            "floats are not allowed in ledger payloads (hashes must be reproducible); "
            "use an integer or a decimal string",
            field=path,
            value=value,
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError("payload keys must be strings", field=path, value=key)
            _check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    raise InputError(f"not a JSON value ({type(value).__name__})", field=path, value=repr(value))


def canonical_payload(payload: Mapping[str, Any]) -> str:
    """Canonical JSON text of a payload (sorted keys, no whitespace, no ASCII escaping)."""
    _check_json(payload, "payload")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The reference definition of the canonical form (used by tests and other readers)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(row: Row) -> str:
    """SHA-256 hex of a stored row's canonical JSON (the row's own ``hash`` is ignored).

    Equal to ``sha256(canonical_json({...all fields but hash..., payload: parsed}))``
    when the stored payload text is canonical; built by concatenation for speed.
    """
    (seq, event_id, type_, round_id, offer_id, lot_id, participant, payload,
     actor, recorded_at, idempotency_key, unique_slot, prev_hash) = row[:13]
    enc = encode_basestring
    text = (
        f'{{"actor":{"null" if actor is None else enc(actor)}'
        f',"event_id":{"null" if event_id is None else enc(event_id)}'
        f',"idempotency_key":{"null" if idempotency_key is None else enc(idempotency_key)}'
        f',"lot_id":{"null" if lot_id is None else enc(lot_id)}'
        f',"offer_id":{"null" if offer_id is None else enc(offer_id)}'
        f',"participant":{"null" if participant is None else enc(participant)}'
        f',"payload":{payload}'
        f',"prev_hash":{"null" if prev_hash is None else enc(prev_hash)}'
        f',"recorded_at":{"null" if recorded_at is None else enc(recorded_at)}'
        f',"round_id":{"null" if round_id is None else enc(round_id)}'
        f',"seq":{int(seq)}'
        f',"type":{"null" if type_ is None else enc(type_)}'
        f',"unique_slot":{"null" if unique_slot is None else enc(unique_slot)}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and a ``Z``, the form stored and hashed."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _opt_str(value: Any, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InputError("must be a non-empty string or None", field=name, value=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event to append; the store assigns ``seq``, ``event_id``, time and hashes.

    ``idempotency_key``: a retried command with the same key and the same content
    records once (the stored event is returned); the same key with other content
    is a :class:`~dosewise.errors.ConflictError`.

    ``unique_slot``: at most one event in the whole ledger may hold a slot (a UNIQUE
    column). The round layer sets e.g. ``"offer:<id>:response"`` on accept/decline
    events so that a second answer to the same offer, from any process, raises
    :class:`~dosewise.errors.ConflictError`.
    """

    type: str
    actor: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    round_id: str | None = None
    offer_id: str | None = None
    lot_id: str | None = None
    participant: str | None = None
    idempotency_key: str | None = None
    unique_slot: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InputError("event type must be a non-empty string", field="type", value=self.type)
        if not isinstance(self.actor, str) or not self.actor:
            raise InputError("actor must be a non-empty string", field="actor", value=self.actor)
        if not isinstance(self.payload, Mapping):
            raise InputError("payload must be a mapping", field="payload", value=repr(self.payload))
        for name in ("round_id", "offer_id", "lot_id", "participant", "idempotency_key", "unique_slot",
                     "event_id"):
            _opt_str(getattr(self, name), name)

    def content(self, payload_text: str) -> tuple[Any, ...]:
        """What must match for a retry with the same idempotency key to count as the same command."""
        return (self.type, self.round_id, self.offer_id, self.lot_id, self.participant, payload_text,
                self.actor, self.unique_slot)

    def to_row(
        self, seq: int, recorded_at: str, prev_hash: str, payload_text: str | None = None
    ) -> tuple[Any, ...]:
        """The stored row for this event at position ``seq`` after ``prev_hash``."""
        text = canonical_payload(self.payload) if payload_text is None else payload_text
        head = (seq, self.event_id or str(uuid.uuid4()), self.type, self.round_id, self.offer_id, self.lot_id,
                self.participant, text, self.actor, recorded_at, self.idempotency_key, self.unique_slot,
                prev_hash)
        try:
            return (*head, row_hash(head))
        except UnicodeEncodeError as exc:
            raise InputError("text that is not valid Unicode (lone surrogate)", field=self.type,
                             value=exc.object[exc.start:exc.end]) from exc


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded, immutable ledger event."""

    seq: int
    event_id: str
    type: str
    round_id: str | None
    offer_id: str | None
    lot_id: str | None
    participant: str | None
    payload: dict[str, Any]
    actor: str
    recorded_at: datetime
    idempotency_key: str | None
    unique_slot: str | None
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Row) -> Event:
        try:
            payload = json.loads(row[7])
            moment = datetime.fromisoformat(row[9])
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"event seq {row[0]} cannot be read: {exc}", seq=int(row[0])) from exc
        return cls(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], payload, row[8], moment,
                   row[10], row[11], row[12], row[13])

    def to_row(self) -> tuple[Any, ...]:
        """The stored form (payload as canonical JSON text, time as ISO string)."""
        return (self.seq, self.event_id, self.type, self.round_id, self.offer_id, self.lot_id,
                self.participant, canonical_payload(self.payload), self.actor, format_time(self.recorded_at),
                self.idempotency_key, self.unique_slot, self.prev_hash, self.hash)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (time as the stored ISO string)."""
        out = {name: getattr(self, name) for name in COLUMNS}
        out["recorded_at"] = format_time(self.recorded_at)
        return out

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers, as a dict (see :func:`canonical_json`)."""
        out = self.to_dict()
        del out["hash"]
        return out


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of walking the chain. ``ok`` is False at the first inconsistency.

    ``checked`` counts events that verified; ``head_seq``/``head_hash`` are those of the
    last verified event (the ledger's head when ``ok``). Publish the head hash: removing
    events from the *end* of a chain leaves a valid shorter chain, detectable only by
    comparing with a head recorded earlier (``expected_head``).
    """

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None = None
    problem: str | None = None

    def raise_for_problem(self) -> None:
        """Raise :class:`~dosewise.errors.IntegrityError` unless the chain verified."""
        if not self.ok:
            raise IntegrityError(f"ledger does not verify at seq {self.first_bad_seq}: {self.problem}",
                                 seq=self.first_bad_seq)


def seq_problem(seq: int, expected: int) -> tuple[int, str] | None:
    """(first bad seq, problem) when a row with ``seq`` stands where ``expected`` should."""
    if seq == expected:
        return None
    if seq > expected:
        gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
        return expected, f"missing event ({gap} absent: deleted row?); next stored is seq {seq}"
    return seq, f"seq {seq} out of order or duplicated (expected seq {expected})"


def link_problem(seq: int, prev_hash: object, expected: str) -> str:
    """The problem of a row whose ``prev_hash`` is not the previous event's hash ``expected``."""
    return f"broken link: prev_hash {str(prev_hash)[:12]}… does not match the hash of seq {seq - 1} ({expected[:12]}…)"


def verify_rows(rows: Iterable[Row], *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
    """Walk stored rows (in the order given) and check seq, links and hashes.

    Detects an edited row (its content no longer matches its hash), a deleted row
    (a gap in seq), reordering (a seq out of place; seq is inside the hash, so
    exchanging seq values also breaks both hashes) and a broken link (``prev_hash``
    differs from the previous event's hash). ``expected_head=(seq, hash)`` also
    checks that an earlier published head is still in the chain (catches truncation).
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    head_seq: int | None = None
    head_hash: str | None = None

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(False, checked, head_seq, head_hash, seq, problem)

    for row in rows:
        seq = int(row[0])
        out_of_place = seq_problem(seq, expected_seq)
        if out_of_place is not None:
            return bad(*out_of_place)
        if row[12] != prev_hash:
            return bad(seq, link_problem(seq, row[12], prev_hash))
        try:
            actual = row_hash(row)
        except (TypeError, ValueError) as exc:
            return bad(seq, f"row cannot be hashed: {exc}")
        if actual != row[13]:
            return bad(seq, f"content does not match its hash (edited row): stored {str(row[13])[:12]}…, "
                            f"recomputed {actual[:12]}…")
        if expected_head is not None and seq == expected_head[0] and row[13] != expected_head[1]:
            return bad(seq, "hash differs from the expected head recorded earlier")
        prev_hash = row[13]
        head_seq, head_hash = seq, prev_hash
        checked += 1
        expected_seq += 1
    if expected_head is not None and (head_seq or 0) < expected_head[0]:
        return bad((head_seq or 0) + 1, f"chain ends at seq {head_seq or 0} but seq {expected_head[0]} was "
                                        "recorded earlier (events removed from the end)")
    return VerifyReport(True, checked, head_seq, head_hash)
