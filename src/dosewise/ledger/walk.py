"""The full walk behind :func:`dosewise.ledger.audit.verify_ledger`, split into ranges of events
that worker processes check independently.

Everything in a check of the ledger except the key registry is a property of one event, or of
an event and the one before it: its hash recomputed from its stored content, its link to the
previous hash, its seq, its leaf in the Merkle tree, and its signature against the key its actor
had registered at that point. So the events are cut into ranges of :data:`RANGE` (a power of
two: each full range is one complete subtree of the Merkle tree) and each range is checked on
its own (:func:`check_range`), in a worker process that reads its rows from the database
itself (no rows cross a process boundary). What ties the ranges together is small and checked
in order by :func:`merge`: the first event of each range must link to the last of the one
before, the ranges' subtree hashes fold into the roots, and the first problem wins.

The key registry is the one sequential part: the key events alone (a few per party) are read
first, in seq order, through :class:`~dosewise.ledger.signing.Registry`, and the resulting
validity intervals of every key are handed to every range (:class:`KeyTimeline`). A range that
meets a key event the registry pass did not see reports it (the two reads must agree).

The findings are those of one sequential walk: the chain's first bad event (the same seq and
message :func:`~dosewise.ledger.events.verify_rows` gives), forgeries up to and including it,
and the tree over the rows up to it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring as _enc  # type: ignore[attr-defined]
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from dosewise.errors import InputError
from dosewise.ledger import merkle
from dosewise.ledger.events import link_problem, row_hash, seq_problem
from dosewise.ledger.signing import CONTEXT, KEY_REGISTERED, KEY_REVOKED, Forgery, Registry, _signable, _stamp

__all__ = ["RANGE", "KeyTimeline", "RangeJob", "RangeResult", "Walk", "check_range", "merge"]

RANGE = 1 << 14
"""Events per range (a power of two, so a full range is one complete subtree)."""

NOT_VERIFIED = "signature does not verify (content changed after signing, or not signed by this key)"
_KEY_TYPES = (KEY_REGISTERED, KEY_REVOKED)

Nodes = list[tuple[int, bytes]]
"""The right edge of a tree as (level, hash) of its complete subtrees, left to right."""


@dataclass(frozen=True, slots=True)
class KeyTimeline:
    """Each identity's keys with the events they were valid between (from the registry pass)."""

    keys: Mapping[str, tuple[tuple[int, int | None, bytes, str], ...]]
    """identity -> ((valid_from seq, valid_until seq or None, raw public key, key id), ...)."""
    key_seqs: frozenset[int]
    """The seq of every key event the registry pass read."""

    @classmethod
    def of(cls, registry: Registry, key_seqs: Iterable[int]) -> KeyTimeline:
        return cls({who: tuple((r.valid_from, r.valid_until, r.key.raw, r.key.key_id) for r in recs)
                    for who, recs in registry.history.items()}, frozenset(key_seqs))


@dataclass(frozen=True, slots=True)
class RangeJob:
    """Check the rows with seq > ``lo`` (at most ``count``): leaf ``lo`` is the first one's."""

    lo: int
    count: int
    snapshots: tuple[int, ...]
    """Row counts within the range at which to keep the tree's edge (for checkpoint roots)."""
    timeline: KeyTimeline
    url: str | None = None
    """Where a worker reads the rows itself (a read-only SQL store); None: ``rows`` are given."""
    rows: Iterable[Sequence[Any]] | None = None


@dataclass(slots=True)
class RangeResult:
    rows: int = 0
    """Rows taken into the tree (up to and including the first bad one)."""
    checked: int = 0
    first_seq_ok: bool = False
    """The first row has the expected seq (so the caller checks its link to the range before)."""
    first_prev: str | None = None
    last_hash: str | None = None
    last_seq: int | None = None
    problem: tuple[int, str] | None = None
    stop_seq: int | None = None
    """The seq of the row where the problem was found."""
    edge: Nodes = field(default_factory=list)
    snapshots: dict[int, Nodes] = field(default_factory=dict)
    forged: list[tuple[int, Forgery]] = field(default_factory=list)
    """(row index in the range, forgery)."""
    signatures: int = 0
    first_row_signatures: int = 0


# -- signatures ---------------------------------------------------------------------------------
_VERIFIERS: dict[bytes, VerifyKey] = {}


def _verify(raw: bytes, sig: bytes, message: bytes) -> bool:
    """Ed25519 verification by libsodium (PyNaCl), ~20 % faster than OpenSSL's on these machines."""
    key = _VERIFIERS.get(raw)
    if key is None:
        key = _VERIFIERS[raw] = VerifyKey(raw)
    try:
        key.verify(message, sig)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class _Float(Exception):
    pass


_JCS_INT = 2**53 - 1


def _no_float(text: str) -> Any:
    raise _Float(text)


def _jcs_int(text: str) -> int:
    value = int(text)
    if -_JCS_INT <= value <= _JCS_INT:
        return value
    raise _Float(text)


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_int=_jcs_int)
"""Parses a payload, and stops at the first float or integer beyond ±(2**53 − 1) (RFC 8785 writes
those its own way, or refuses them)."""


def _plain_text(text: str) -> bool:
    """Whether a payload text that :data:`_DECODER` parsed can hold nothing else ``json.dumps``
    writes differently from RFC 8785: no character at or above U+D800 (RFC 8785 sorts keys by
    UTF-16 units, Python by code points) and no escape that may hide one. Conservative."""
    return "\\u" not in text and (text.isascii() or max(text) < "\ud800")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_FIELDS = (1, 2, 3, 4, 5, 6, 8, 10, 11)


def _signed_form(row: Sequence[Any], payload: dict[str, Any], plain: bool) -> bytes:
    """The bytes an event's signature covers (:func:`~dosewise.ledger.signing.signable_bytes`).

    For a payload whose text ``plain`` says holds nothing RFC 8785 writes differently (and string
    or null fields), the standard library's encoder writes them directly; anything else goes
    through :func:`~dosewise.ledger.signing.canonical` (``rfc8785``). A test holds the two equal."""
    if plain and all(row[i] is None or type(row[i]) is str for i in _FIELDS):
        body = {k: v for k, v in payload.items() if k != "signature"}
        try:
            return _ENCODER.encode({
                "context": CONTEXT, "event_id": row[1], "type": row[2], "actor": row[8], "round_id": row[3],
                "offer_id": row[4], "lot_id": row[5], "participant": row[6], "payload": body,
                "idempotency_key": row[10], "unique_slot": row[11],
            }).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference path refuses it
    return _signable(row[1], row[2], row[8], row[3], row[4], row[5], row[6], payload, row[10], row[11])


def _text_form(row: Sequence[Any], text: str, stamp: Any) -> bytes | None:
    """The signed form written straight from the stored payload text: the text less its
    ``"signature"`` member, inside the other fields. None when it cannot be made this way.

    Equal to :func:`_signed_form` whenever the stored text is canonical (every ledger writes it
    so). It is only trusted when the signature verifies over it: a member removed from a JSON
    text leaves the text of the same object without that member, and an honest signer never
    signs a payload that still holds a top-level ``"signature"``, so a signature that verifies
    here verifies over the reference form too. When it does not verify, the reference form
    decides (see :func:`_signature_problem`)."""
    member = '"signature":' + _ENCODER.encode(stamp)
    at = text.find(member)
    if at < 1:
        return None
    end = at + len(member)
    if text[at - 1] == ",":
        body = text[:at - 1] + text[end:]
    elif text[at - 1] == "{":
        body = text[:at] + (text[end + 1:] if text[end:end + 1] == "," else text[end:])
    else:
        return None
    e = _enc  # a JSON string; TypeError for anything but a str
    try:
        return (f'{{"actor":{"null" if row[8] is None else e(row[8])},"context":"{CONTEXT}"'
                f',"event_id":{"null" if row[1] is None else e(row[1])}'
                f',"idempotency_key":{"null" if row[10] is None else e(row[10])}'
                f',"lot_id":{"null" if row[5] is None else e(row[5])}'
                f',"offer_id":{"null" if row[4] is None else e(row[4])}'
                f',"participant":{"null" if row[6] is None else e(row[6])},"payload":{body}'
                f',"round_id":{"null" if row[3] is None else e(row[3])}'
                f',"type":{"null" if row[2] is None else e(row[2])}'
                f',"unique_slot":{"null" if row[11] is None else e(row[11])}}}').encode()
    except (TypeError, UnicodeEncodeError):
        return None


def _signature_problem(row: Sequence[Any], seq: int, timeline: KeyTimeline) -> tuple[str | None, bool]:
    """Why an ordinary event is forged (None: it is not), and whether a signature was checked.
    The same rules and messages as :meth:`Registry.check`."""
    actor, text = row[8], row[7]
    records = timeline.keys.get(actor)
    if records is None and '"signature"' not in str(text):
        return None, False
    try:
        try:
            payload = _DECODER.decode(text)
            plain = True
        except _Float:
            payload, plain = json.loads(text), False
        datetime.fromisoformat(row[9])
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
    except (TypeError, ValueError) as exc:
        if not any(valid_from < seq for valid_from, *_ in records or ()):
            return None, False  # nothing to check it against; the chain check judges the row
        return f"the event cannot be read: {exc}", False
    signed = "signature" in payload
    current = None
    registered = False
    for valid_from, valid_until, raw, kid in records or ():
        if valid_from < seq:
            registered = True
            if valid_until is None or seq < valid_until:
                current = (valid_from, raw, kid)
    if current is None:
        if registered:
            return f"{actor} registered a key but has no active key (revoked); the event cannot be theirs", False
        if signed:
            return f"signed, but {actor} has no registered key to check it against", False
        return None, False
    valid_from, raw, kid = current
    if not signed:
        return f"no signature, but {actor} registered key {kid} at seq {valid_from}", False
    stamp = _stamp(payload)
    if isinstance(stamp, str):
        return stamp, False
    got, sig = stamp
    if got != kid:
        return f"signed with key {got}, not {actor}'s key valid here ({kid})", False
    fast = _text_form(row, text, payload["signature"])
    if fast is not None and _verify(raw, sig, fast):
        return None, True
    try:
        message = _signed_form(row, payload, plain and _plain_text(text))
    except InputError as exc:
        return f"the signed form cannot be built: {exc.message}", False
    if message == fast:
        return NOT_VERIFIED, True
    return (None if _verify(raw, sig, message) else NOT_VERIFIED), True


# -- one range ----------------------------------------------------------------------------------
_STORES: dict[str, Any] = {}


def _rows_of(job: RangeJob) -> Iterable[Sequence[Any]]:
    if job.rows is not None:
        return job.rows
    from dosewise.ledger.sql import SQLStore

    assert job.url is not None
    store = _STORES.get(job.url)
    if store is None:
        store = _STORES[job.url] = SQLStore(job.url, readonly=True)
    return itertools.islice(store.rows(job.lo, page=job.count), job.count)


def check_range(job: RangeJob) -> RangeResult:
    """Check one range (see the module docstring); stops at the range's first bad row."""
    out = RangeResult()
    levels: list[int] = []
    hashes: list[bytes] = []
    sha256 = hashlib.sha256
    wanted = set(job.snapshots)
    timeline = job.timeline
    expected = job.lo + 1
    prev: str | None = None
    for index, row in enumerate(_rows_of(job)):
        # the leaf (of the hash as stored) joins the tree whatever the checks below find
        try:
            leaf = bytes.fromhex(row[13])
        except (TypeError, ValueError):
            leaf = str(row[13]).encode("utf-8", "replace")
        h = sha256(b"\x00" + leaf).digest()
        level = 0
        while levels and levels[-1] == level:
            levels.pop()
            h = sha256(b"\x01" + hashes.pop() + h).digest()
            level += 1
        levels.append(level)
        hashes.append(h)
        out.rows = index + 1
        if out.rows in wanted:
            out.snapshots[out.rows] = list(zip(levels, hashes, strict=True))
        try:
            seq = int(row[0])
        except (TypeError, ValueError):
            out.problem = (expected, f"row after seq {expected - 1} has a seq that is not a number: {row[0]!r}")
            out.stop_seq = expected
            break
        if row[2] in _KEY_TYPES:
            if seq not in timeline.key_seqs:
                out.forged.append((index, Forgery(seq, str(row[8]), str(row[2]),
                                                  "a key event the registry did not read (inconsistent reads)")))
        else:
            reason, checked = _signature_problem(row, seq, timeline)
            if checked:
                out.signatures += 1
                if index == 0:
                    out.first_row_signatures = 1
            if reason is not None:
                out.forged.append((index, Forgery(seq, str(row[8]), str(row[2]), reason)))
        if index == 0:
            out.first_prev = row[12]
        problem = seq_problem(seq, expected)
        if problem is None and index > 0 and row[12] != prev:
            problem = (seq, link_problem(seq, row[12], prev or ""))
        if problem is None:
            try:
                actual = row_hash(row)
            except (TypeError, ValueError) as exc:
                problem = (seq, f"row cannot be hashed: {exc}")
            else:
                if actual != row[13]:
                    problem = (seq, f"content does not match its hash (edited row): stored {str(row[13])[:12]}…, "
                                    f"recomputed {actual[:12]}…")
        if index == 0:
            out.first_seq_ok = seq == expected
        if problem is not None:
            out.problem, out.stop_seq = problem, seq
            break
        prev = row[13]
        out.last_hash, out.last_seq = prev, seq
        out.checked += 1
        expected += 1
    out.edge = list(zip(levels, hashes, strict=True))
    return out


# -- putting the ranges together ----------------------------------------------------------------
def _fold(nodes: Sequence[bytes]) -> bytes:
    return merkle._fold(nodes) if nodes else merkle.EMPTY_ROOT


@dataclass(slots=True)
class Walk:
    """What the ranges add up to, as one sequential walk would have found it."""

    checked: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    problem: tuple[int, str] | None = None
    size: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)
    forged: list[Forgery] = field(default_factory=list)
    signatures: int = 0
    last_seq: int | None = None
    """The seq of the last row taken (the first bad one, when there is one)."""


def merge(results: Iterable[tuple[RangeJob, RangeResult]]) -> Walk:
    """Check the links between ranges, in order, and fold their trees (see the module docstring).

    ``results`` come in range order; consumption stops at the first range with a problem."""
    from dosewise.ledger.events import GENESIS_HASH

    walk = Walk(roots={0: merkle.EMPTY_ROOT})
    edge: list[bytes] = []  # hashes of the complete subtrees left of the current range
    edge_levels: list[int] = []
    prev = GENESIS_HASH
    for job, res in results:
        if res.rows == 0:
            break
        if res.first_seq_ok and res.first_prev != prev:
            # the range's first row does not link to the range before: it is the first bad row
            seq = job.lo + 1
            walk.problem = (seq, link_problem(seq, res.first_prev, prev))
            taken, tail = 1, res.snapshots.get(1, [])
            walk.last_seq = seq
            walk.forged.extend(f for i, f in res.forged if i == 0)
            walk.signatures += res.first_row_signatures
        else:
            taken, tail = res.rows, res.edge
            walk.problem = res.problem
            walk.forged.extend(f for _, f in res.forged)
            walk.signatures += res.signatures
            walk.checked += res.checked
            if res.last_seq is not None:
                walk.head_seq, walk.head_hash = res.last_seq, res.last_hash
                prev = res.last_hash or prev
            walk.last_seq = res.stop_seq if res.problem is not None else res.last_seq
        for size, nodes in res.snapshots.items():
            if size <= taken:
                walk.roots[job.lo + size] = _fold([*edge, *(h for _, h in nodes)])
        walk.size = job.lo + taken
        for level, h in tail:
            while edge_levels and edge_levels[-1] == level:
                edge_levels.pop()
                h = merkle.node_hash(edge.pop(), h)
                level += 1
            edge_levels.append(level)
            edge.append(h)
        if walk.problem is not None or res.rows < job.count:
            break
    walk.roots[walk.size] = _fold(edge)
    return walk
