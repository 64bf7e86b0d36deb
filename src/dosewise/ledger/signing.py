"""Signed decisions: detached Ed25519 signatures on events, and the key registry.

**What is signed.** The signer's *signable form* of an event is the RFC 8785 (JSON
Canonicalization Scheme, via the ``rfc8785`` package) serialisation of::

    {"context": "dosewise/event/v1", "event_id": …, "type": …, "actor": …,
     "round_id": …, "offer_id": …, "lot_id": …, "participant": …,
     "payload": <payload without "signature">, "idempotency_key": …, "unique_slot": …}

Everything the party decides is covered; what the store assigns later (``seq``,
``recorded_at``, ``prev_hash``, ``hash``) is not — the chain and the Merkle tree bind
those. :func:`sign_event` fixes ``event_id`` before signing (derived from the
idempotency key when there is one, so a retried command is signed identically and
records once), so a copy of a signed event cannot be recorded twice (``event_id`` is
UNIQUE). Integers in a signed payload must lie within ±(2**53 − 1) (RFC 8785).

**Where the signature goes.** ``payload["signature"] = {"alg": "Ed25519",
"key_id": <id of the signer's key>, "sig": <base64 of the 64-byte signature>}``.
The event hash covers it like any other payload field.

**The key registry** is made of ledger events (see :func:`registration`):

* ``key.registered`` — payload ``{"identity", "role", "alg", "public_key", "key_id"}``,
  actor = identity. The first key of an identity must sign its own registration
  (proof of possession); a new key for an identity that has an active key
  (rotation) must be signed by that active key. The key is valid from this event on.
* ``key.revoked`` — payload ``{"identity", "key_id"}``, signed by the identity's active key.

Once an identity has registered a key, every later event in its name (``actor``)
must carry a valid signature by the key active at that point of the ledger; an
event without one is reported as *forged* by :class:`Registry`. Events of
identities that never registered a key are accepted unsigned (nothing can be
checked for them).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dosewise.errors import InputError
from dosewise.ledger.events import Event, NewEvent
from dosewise.ledger.keys import PublicKey, load_private, public_key

__all__ = [
    "KEY_REGISTERED",
    "KEY_REVOKED",
    "ROLES",
    "Registry",
    "Signer",
    "registration",
    "revocation",
    "sign_event",
    "signable_bytes",
]

CONTEXT = "dosewise/event/v1"
KEY_REGISTERED = "key.registered"
KEY_REVOKED = "key.revoked"
ROLES = ("participant", "donor", "coordinator", "reviewer", "observer", "ledger")
_EVENT_ID_NAMESPACE = uuid.UUID("8f1c3b52-5d0e-4d61-9a57-64f2c1d2a9e3")


_JCS_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` (sorted keys, no whitespace, no ASCII escaping) writes exactly the
    RFC 8785 bytes: dicts whose keys are all below U+D800 (so code-point order is UTF-16 order),
    lists, strings, booleans, null and integers within ±(2**53 − 1); no floats."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or v is True or v is False or type(v) is str:
            continue
        if type(v) is int:
            if -_JCS_INT <= v <= _JCS_INT:
                continue
            return False
        if type(v) is dict:
            for k, item in v.items():
                if type(k) is not str or (k and max(k) >= "\ud800"):
                    return False
                stack.append(item)
            continue
        if type(v) is list:
            stack.extend(v)
            continue
        return False
    return True


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; a value JCS cannot represent is an :class:`InputError`.

    The ``rfc8785`` package is the definition. For the values ledger payloads hold (see
    :func:`_plain`) the standard library's encoder produces the same bytes four times faster,
    and is used for them; a property test holds the two equal.
    """
    try:
        if _plain(value):
            try:
                return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: let the reference implementation decide
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise InputError(f"cannot be signed: {exc}", field="payload") from exc


def _signable(event_id: str | None, type_: str, actor: str, round_id: str | None, offer_id: str | None,
              lot_id: str | None, participant: str | None, payload: Mapping[str, Any],
              idempotency_key: str | None, unique_slot: str | None) -> bytes:
    body = {k: v for k, v in payload.items() if k != "signature"}
    return canonical({
        "context": CONTEXT, "event_id": event_id, "type": type_, "actor": actor, "round_id": round_id,
        "offer_id": offer_id, "lot_id": lot_id, "participant": participant, "payload": body,
        "idempotency_key": idempotency_key, "unique_slot": unique_slot,
    })


def signable_bytes(event: NewEvent | Event) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    return _signable(event.event_id, event.type, event.actor, event.round_id, event.offer_id, event.lot_id,
                     event.participant, event.payload, event.idempotency_key, event.unique_slot)


def sign_event(event: NewEvent, private: Ed25519PrivateKey) -> NewEvent:
    """``event`` with a fixed ``event_id`` and ``payload["signature"]`` by ``private``.

    The signer must be the event's actor (the identity whose key ``private`` is);
    a payload that already holds a ``"signature"`` is refused.
    """
    if "signature" in event.payload:
        raise InputError("the event is already signed", field="payload.signature")
    event_id = event.event_id
    if event_id is None:
        event_id = str(uuid.uuid5(_EVENT_ID_NAMESPACE, event.idempotency_key) if event.idempotency_key
                       else uuid.uuid4())
    unsigned = dataclasses.replace(event, event_id=event_id)
    sig = private.sign(signable_bytes(unsigned))
    stamp = {"alg": "Ed25519", "key_id": public_key(private).key_id, "sig": base64.b64encode(sig).decode("ascii")}
    return dataclasses.replace(unsigned, payload={**event.payload, "signature": stamp})


@dataclass(frozen=True, slots=True)
class Signer:
    """A party's private key, which signs the events recorded in its name.

    Usually loaded from the key file ``dosewise keys gen`` wrote: ``Signer.from_file(path)``;
    its :meth:`sign` is what :meth:`dosewise.Desk.respond` takes as ``sign``.

    Parameters
    ----------
    private : cryptography.hazmat.primitives.asymmetric.ed25519.Ed25519PrivateKey
        The private key (never shown in a repr).

    Examples
    --------
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> from dosewise import Signer
    >>> from dosewise.ledger import NewEvent
    >>> signer = Signer(Ed25519PrivateKey.generate())
    >>> signed = signer.sign(NewEvent(type="offer.accepted", actor="PRK", payload={"offer": "R1:L1:PRK:0"}))
    >>> signed.payload["signature"]["key_id"] == signer.public.key_id
    True
    """

    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        """Load an unencrypted PEM private key file (readable by its owner only).

        Parameters
        ----------
        path : str or pathlib.Path
            The key file.

        Returns
        -------
        Signer
            The key's signer.

        Examples
        --------
        >>> import os, tempfile
        >>> from cryptography.hazmat.primitives import serialization
        >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        >>> from dosewise import Signer
        >>> key = Ed25519PrivateKey.generate()
        >>> pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        ...                         serialization.NoEncryption())
        >>> path = os.path.join(tempfile.mkdtemp(), "party.key")
        >>> with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        ...     _ = f.write(pem)
        >>> Signer.from_file(path).public.key_id == Signer(key).public.key_id
        True
        """
        return cls(load_private(path))

    @property
    def public(self) -> PublicKey:
        """The public half of the key (its ``key_id`` names it in signatures).

        Returns
        -------
        PublicKey
            The public key.

        Examples
        --------
        >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        >>> from dosewise import Signer
        >>> len(Signer(Ed25519PrivateKey.generate()).public.key_id) > 0
        True
        """
        return public_key(self.private)

    def sign(self, event: NewEvent) -> NewEvent:
        """The event with this key's signature in ``payload["signature"]``.

        Parameters
        ----------
        event : NewEvent
            The event to sign (its ``event_id`` is fixed before signing).

        Returns
        -------
        NewEvent
            The signed event.

        Examples
        --------
        >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        >>> from dosewise import Signer
        >>> from dosewise.ledger import NewEvent
        >>> signed = Signer(Ed25519PrivateKey.generate()).sign(NewEvent(type="offer.declined", actor="PRK"))
        >>> sorted(signed.payload["signature"])
        ['alg', 'key_id', 'sig']
        """
        return sign_event(event, self.private)

    __call__ = sign


def registration(signer: Signer, identity: str, role: str, *, new_key: PublicKey | None = None,
                 idempotency_key: str | None = None) -> NewEvent:
    """A signed ``key.registered`` event.

    First key of ``identity``: ``registration(Signer(key), identity, role)`` (self-signed).
    Rotation: ``registration(Signer(current), identity, role, new_key=new_public)``.
    """
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role", value=role)
    key = new_key or signer.public
    event = NewEvent(type=KEY_REGISTERED, actor=identity, participant=identity if role == "participant" else None,
                     payload={"identity": identity, "role": role, "alg": "Ed25519", "public_key": key.b64,
                              "key_id": key.key_id},
                     idempotency_key=idempotency_key or f"key:{identity}:{key.key_id}:registered")
    return signer.sign(event)


def revocation(signer: Signer, identity: str, revoked: str) -> NewEvent:
    """A ``key.revoked`` event for key id ``revoked`` of ``identity``, signed by its active key."""
    event = NewEvent(type=KEY_REVOKED, actor=identity, payload={"identity": identity, "key_id": revoked},
                     idempotency_key=f"key:{identity}:{revoked}:revoked")
    return signer.sign(event)


@dataclass(frozen=True, slots=True)
class Forgery:
    """An event whose signature is missing or wrong although its actor has a registered key."""

    seq: int
    actor: str
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    identity: str
    role: str
    key: PublicKey
    valid_from: int
    valid_until: int | None = None  # seq of the event that ended it (revoked or rotated)


def _stamp(payload: Mapping[str, Any]) -> tuple[str, bytes] | str:
    """(key id, signature bytes) of a payload's signature, or a reason it cannot be read."""
    stamp = payload.get("signature")
    if not isinstance(stamp, Mapping):
        return "signature is not an object"
    if stamp.get("alg") != "Ed25519":
        return f"unsupported signature algorithm {stamp.get('alg')!r}"
    kid, sig = stamp.get("key_id"), stamp.get("sig")
    if not isinstance(kid, str) or not isinstance(sig, str):
        return "signature lacks key_id or sig"
    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return "signature is not base64"
    if len(raw) != 64:
        return "an Ed25519 signature has 64 bytes"
    return kid, raw


class Registry:
    """The key registry as of a point in the ledger, built by feeding events in seq order.

    :meth:`check` returns None for an event that passes (and applies key events), or a
    reason it is forged. ``deferred=True`` collects the signature checks of ordinary
    events as (seq, key, signature, message) tasks in :attr:`pending` instead of
    running them, so a caller can verify them in parallel (key events are always
    checked at once: the registry depends on them).
    """

    def __init__(self) -> None:
        self.active: dict[str, KeyRecord] = {}
        self.history: dict[str, list[KeyRecord]] = {}
        self.checked = 0
        self.pending: list[tuple[int, bytes, bytes, bytes]] = []

    def registered(self, identity: str) -> bool:
        return identity in self.history

    def key_at(self, identity: str, seq: int) -> KeyRecord | None:
        """The key of ``identity`` valid at event ``seq`` (after the registry has seen it)."""
        for rec in self.history.get(identity, ()):
            if rec.valid_from < seq and (rec.valid_until is None or seq <= rec.valid_until):
                return rec
        return None

    def check(self, ev: Event, *, deferred: bool = False) -> str | None:
        signed = "signature" in ev.payload
        if ev.type in (KEY_REGISTERED, KEY_REVOKED):
            return self._key_event(ev)
        current = self.active.get(ev.actor)
        if current is None:
            if ev.actor in self.history:
                return f"{ev.actor} registered a key but has no active key (revoked); the event cannot be theirs"
            if signed:
                return f"signed, but {ev.actor} has no registered key to check it against"
            return None
        if not signed:
            return f"no signature, but {ev.actor} registered key {current.key.key_id} at seq {current.valid_from}"
        stamp = _stamp(ev.payload)
        if isinstance(stamp, str):
            return stamp
        kid, sig = stamp
        if kid != current.key.key_id:
            return f"signed with key {kid}, not {ev.actor}'s key valid here ({current.key.key_id})"
        message = signable_bytes(ev)
        if deferred:
            self.pending.append((ev.seq, current.key.raw, sig, message))
            return None
        self.checked += 1
        if not current.key.verify(sig, message):
            return "signature does not verify (content changed after signing, or not signed by this key)"
        return None

    def _key_event(self, ev: Event) -> str | None:
        p = ev.payload
        identity = p.get("identity")
        if identity != ev.actor:
            return f"key event for {identity!r} recorded in the name of {ev.actor!r}"
        stamp = _stamp(p)
        if isinstance(stamp, str):
            return f"key event without a valid signature: {stamp}"
        kid, sig = stamp
        message = signable_bytes(ev)
        current = self.active.get(ev.actor)
        self.checked += 1
        if ev.type == KEY_REGISTERED:
            try:
                key = PublicKey.from_b64(p.get("public_key"))
            except InputError as exc:
                return f"key.registered with a bad public key: {exc.message}"
            role = p.get("role")
            if role not in ROLES or p.get("key_id") != key.key_id:
                return "key.registered with an unknown role or a key_id that does not match the key"
            signer = current.key if current is not None else key
            if kid != signer.key_id or not signer.verify(sig, message):
                who = "the identity's active key" if current is not None else "the key being registered"
                return f"key.registered must be signed by {who}"
            if current is not None:
                self._end(current, ev.seq)
            rec = KeyRecord(ev.actor, str(role), key, ev.seq)
            self.active[ev.actor] = rec
            self.history.setdefault(ev.actor, []).append(rec)
            return None
        if current is None:
            return f"key.revoked, but {ev.actor} has no active key"
        if kid != current.key.key_id or not current.key.verify(sig, message):
            return "key.revoked must be signed by the identity's active key"
        if p.get("key_id") != current.key.key_id:
            return "key.revoked names a key that is not the identity's active key"
        self._end(current, ev.seq)
        del self.active[ev.actor]
        return None

    def _end(self, rec: KeyRecord, seq: int) -> None:
        records = self.history[rec.identity]
        records[records.index(rec)] = dataclasses.replace(rec, valid_until=seq)
