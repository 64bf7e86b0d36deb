"""API keys: identities with a role (and, for participants, one participant code).

A key is shown once, as ``dw_<key id>_<secret>``; the table keeps the key id in clear (so a
request is looked up by it) and the secret only as an Argon2id hash (argon2-cffi, OWASP's
minimum parameters: 19 MiB, 2 passes). Verifying a request is one lookup by key id and one
hash check; a process remembers a token it has verified as an HMAC-SHA256 digest (with a random
key of its own, never the token), so the Argon2 cost is paid once per key and process. The
revoked keys are read again, all at once, after ``cache_seconds`` (default 1 s), so a revocation
made elsewhere takes effect within that time (at once in the process that revokes). Secrets never
enter the ledger, a log or an error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dosewise.errors import InputError, NotFoundError
from dosewise.ledger.schema import IDENTITIES
from dosewise.vocabulary import ROLES

__all__ = ["TOKEN_PREFIX", "Identity", "KeyRing"]

TOKEN_PREFIX = "dw_"
_TOKEN = re.compile(r"^dw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@dataclass(frozen=True)
class Identity:
    """Who holds a key: a name, a role and (participants only) the participant code."""

    key_id: str
    name: str
    role: str
    participant: str | None
    created_at: str
    revoked_at: str | None = None

    @property
    def actor(self) -> str:
        """How events record this identity: ``role:participant-or-name:key id``."""
        return f"{self.role}:{self.participant or self.name}:{self.key_id}"

    @property
    def identity(self) -> str:
        """The identity the two-person rule compares (several keys may share one name)."""
        return f"{self.name}"

    def public(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "role": self.role, "participant": self.participant,
                "created_at": self.created_at, "revoked_at": self.revoked_at, "actor": self.actor}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _row(row: Any) -> Identity:
    return Identity(row.key_id, row.name, row.role, row.participant, row.created_at, row.revoked_at)


class KeyRing:
    """The identities table of a SQL ledger."""

    def __init__(self, engine: sa.Engine, *, cache_seconds: float = 1.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._pepper = secrets.token_bytes(32)  # this process's HMAC key for remembered tokens
        self._known: dict[bytes, Identity] = {}  # HMAC-SHA256 of a verified token -> its identity
        self._revoked: frozenset[str] = frozenset()
        self._revoked_here: frozenset[str] = frozenset()
        self._revoked_read = float("-inf")
        self._lock = threading.Lock()

    def create(self, role: str, *, name: str | None = None, participant: str | None = None) -> tuple[Identity, str]:
        """A new key; returns the identity and the token (shown once, never stored)."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}", field="--role", value=role)
        if role == "participant":
            if not participant:
                raise InputError("a participant key needs --participant CODE", field="--participant")
            from dosewise.reference.countries import validate_iso3

            participant = validate_iso3(participant, field="--participant")
        elif participant is not None:
            raise InputError("only a participant key is bound to a participant", field="--participant",
                             value=participant)
        key_id = secrets.token_hex(6)
        name = name or participant or f"{role}-{key_id}"
        if not _NAME.match(name):
            raise InputError("a name is 1-64 letters, digits, spaces or . _ @ - (starting with a letter or digit)",
                             field="--name", value=name)
        secret = secrets.token_urlsafe(32)
        ident = Identity(key_id, name, role, participant, _now())
        with self.engine.begin() as conn:
            conn.execute(IDENTITIES.insert().values(
                key_id=key_id, name=name, role=role, participant=participant,
                secret_hash=_HASHER.hash(secret), created_at=ident.created_at))
        return ident, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def list(self) -> list[Identity]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(IDENTITIES).order_by(IDENTITIES.c.created_at, IDENTITIES.c.key_id)).all()
        return [_row(r) for r in rows]

    def get(self, key_id: str) -> Identity:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(IDENTITIES).where(IDENTITIES.c.key_id == key_id)).first()
        if row is None:
            raise NotFoundError("no such key", field="key", value=key_id)
        return _row(row)

    def revoke(self, key_id: str) -> Identity:
        """Mark the key revoked (at once, for every process); revoking twice changes nothing."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(IDENTITIES).where(IDENTITIES.c.key_id == key_id)).first()
            if row is None:
                raise NotFoundError("no such key", field="key", value=key_id)
            if row.revoked_at is None:
                conn.execute(IDENTITIES.update().where(IDENTITIES.c.key_id == key_id).values(revoked_at=_now()))
        with self._lock:  # refused at once in this process
            self._revoked_here |= {key_id}
            self._revoked |= {key_id}
            self._known = {d: i for d, i in self._known.items() if i.key_id != key_id}
        return self.get(key_id)

    def authenticate(self, token: str) -> Identity | None:
        """The identity a bearer token belongs to, or None (unknown, malformed, wrong or revoked).

        The Argon2id check runs once per token and process: the identity is then remembered under
        an HMAC-SHA256 of the token with a random key of this process (never the token itself).
        Revocations are read for all keys at once, at most every ``cache_seconds``, and at once in
        the process that revokes.
        """
        m = _TOKEN.match(token)
        if m is None:
            return None
        key_id, secret = m.group(1), m.group(2)
        digest = hmac.new(self._pepper, token.encode(), hashlib.sha256).digest()
        revoked = self._revoked_keys()
        if key_id in revoked:
            return None
        with self._lock:
            known = self._known.get(digest)
        if known is not None:
            return known
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(IDENTITIES).where(IDENTITIES.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        try:
            _HASHER.verify(row.secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return None
        ident = _row(row)
        with self._lock:
            if key_id not in self._revoked:
                self._known[digest] = ident
        return ident

    def remembered(self, token: str) -> Identity | None:
        """The identity of a token this process has already checked, without blocking: None when
        the token is new here or the revocations are due to be read again (then call
        :meth:`authenticate`)."""
        digest = hmac.new(self._pepper, token.encode(), hashlib.sha256).digest()
        with self._lock:
            if time.monotonic() - self._revoked_read >= self.cache_seconds:
                return None
            known = self._known.get(digest)
            return None if known is None or known.key_id in self._revoked else known

    def _revoked_keys(self) -> frozenset[str]:
        """The revoked key ids, read again when older than ``cache_seconds`` (one query for every key)."""
        now = time.monotonic()
        with self._lock:
            if now - self._revoked_read < self.cache_seconds:
                return self._revoked
            self._revoked_read = now  # one thread reads; the others use the set it replaces meanwhile
        with self.engine.connect() as conn:
            ids = frozenset(str(k) for k in conn.execute(
                sa.select(IDENTITIES.c.key_id).where(IDENTITIES.c.revoked_at.is_not(None))).scalars())
        with self._lock:
            self._revoked = ids | self._revoked_here
            self._revoked_read = now
            if self._known:
                self._known = {d: i for d, i in self._known.items() if i.key_id not in self._revoked}
            return self._revoked
