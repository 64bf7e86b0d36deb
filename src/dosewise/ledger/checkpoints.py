"""Signed checkpoints: (tree size, root hash, time) signed by the ledger's own key, cosigned by witnesses.

A checkpoint file (JSON) holds::

    {"checkpoint": {"context": "dosewise/checkpoint/v1", "log_id": <ledger key id>,
                    "tree_size": n, "root_hash": <hex MTH of the first n events>,
                    "head_hash": <chain hash of event n>, "time": <ISO 8601 UTC>},
     "signatures": [{"role": "ledger", "name": "ledger", "key_id": …, "public_key": …, "sig": …},
                    {"role": "witness", "name": "observer-1", …}]}

Every signature is Ed25519 over the RFC 8785 form of ``"checkpoint"``; a witness
cosigns the very same body. The ledger's signature must be by the key ``log_id``
names. :func:`checkpoint` writes one (under the append lock, after bringing the
Merkle node cache up to the head) to the append-only ``ledger_checkpoints`` table
and returns it; :func:`write_file` / :func:`append_jsonl` put it where a party or a
git repository keeps it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dosewise.errors import InputError, LedgerError
from dosewise.ledger.events import GENESIS_HASH, format_time
from dosewise.ledger.keys import PublicKey, load_private, public_key
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.schema import CHECKPOINTS
from dosewise.ledger.signing import Signer, canonical
from dosewise.ledger.store import Store
from dosewise.ledger.tree import open_view

__all__ = [
    "Checkpoint",
    "CheckpointSignature",
    "LedgerKey",
    "append_jsonl",
    "checkpoint",
    "export_jsonl",
    "read_file",
    "read_jsonl",
    "stored_checkpoints",
    "write_file",
]

CONTEXT = "dosewise/checkpoint/v1"
LedgerKey = Ed25519PrivateKey | Signer | str | Path
"""The ledger's private key: loaded, or the path of its file."""


def _private(key: LedgerKey) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, Signer):
        return key.private
    return load_private(key)


@dataclass(frozen=True, slots=True)
class CheckpointSignature:
    role: str
    name: str
    key_id: str
    public_key: str
    sig: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "name": self.name, "key_id": self.key_id, "public_key": self.public_key,
                "sig": self.sig}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head of the ledger."""

    log_id: str
    tree_size: int
    root_hash: str
    head_hash: str
    time: str
    signatures: tuple[CheckpointSignature, ...] = ()

    @property
    def root(self) -> bytes:
        return bytes.fromhex(self.root_hash)

    def body(self) -> dict[str, Any]:
        return {"context": CONTEXT, "log_id": self.log_id, "tree_size": self.tree_size, "root_hash": self.root_hash,
                "head_hash": self.head_hash, "time": self.time}

    def signed_bytes(self) -> bytes:
        return canonical(self.body())

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.body(), "signatures": [s.to_json() for s in self.signatures]}

    def text(self) -> str:
        """One line of JSON (sorted keys): the form stored and exported."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def sign(self, key: LedgerKey, *, role: str, name: str) -> Checkpoint:
        """This checkpoint with one more signature (``role`` "ledger" or "witness")."""
        private = _private(key)
        pub = public_key(private)
        if role == "ledger" and pub.key_id != self.log_id:
            raise InputError("the ledger's signature must be by the key the checkpoint's log_id names")
        if any(s.key_id == pub.key_id for s in self.signatures):
            raise InputError("this key has already signed this checkpoint", field="signatures", value=pub.key_id)
        sig = base64.b64encode(private.sign(self.signed_bytes())).decode("ascii")
        return replace(self, signatures=(*self.signatures, CheckpointSignature(role, name, pub.key_id, pub.b64, sig)))

    def cosign(self, key: LedgerKey, name: str) -> Checkpoint:
        """A witness's cosignature (check consistency with what the witness saw before cosigning)."""
        return self.sign(key, role="witness", name=name)

    def problems(self) -> list[str]:
        """What is wrong with the signatures (empty when the ledger's and every witness's verify)."""
        out: list[str] = []
        ledger_ok = False
        for s in self.signatures:
            try:
                key = PublicKey.from_b64(s.public_key)
                raw = base64.b64decode(s.sig.encode("ascii"), validate=True)
            except (InputError, binascii.Error, UnicodeEncodeError):
                out.append(f"{s.role} signature {s.name!r} is malformed")
                continue
            if key.key_id != s.key_id or not key.verify(raw, self.signed_bytes()):
                out.append(f"{s.role} signature {s.name!r} (key {s.key_id}) does not verify")
            elif s.role == "ledger" and s.key_id == self.log_id:
                ledger_ok = True
        if not ledger_ok:
            out.append(f"no valid signature by the ledger key {self.log_id}")
        return out

    def witnesses(self) -> list[str]:
        return [s.name for s in self.signatures if s.role == "witness"]

    @classmethod
    def from_json(cls, data: Any, *, file: str | None = None) -> Checkpoint:
        def bad(msg: str, fld: str | None = None) -> InputError:
            return InputError(msg, file=file, field=fld)

        if not isinstance(data, Mapping) or not isinstance(data.get("checkpoint"), Mapping):
            raise bad("not a dosewise checkpoint (no \"checkpoint\" object)")
        body = data["checkpoint"]
        if body.get("context") != CONTEXT:
            raise bad(f"not a {CONTEXT} checkpoint", "checkpoint.context")
        size = body.get("tree_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad("must be a non-negative integer", "checkpoint.tree_size")
        for name in ("log_id", "root_hash", "head_hash", "time"):
            if not isinstance(body.get(name), str):
                raise bad("must be a string", f"checkpoint.{name}")
        try:
            if len(bytes.fromhex(body["root_hash"])) != 32:
                raise ValueError
        except ValueError:
            raise bad("must be 64 hex digits", "checkpoint.root_hash") from None
        sigs = data.get("signatures")
        if not isinstance(sigs, list):
            raise bad("must be a list", "signatures")
        parsed = []
        for i, s in enumerate(sigs):
            names = ("role", "name", "key_id", "public_key", "sig")
            if not isinstance(s, Mapping) or not all(isinstance(s.get(k), str) for k in names):
                raise bad("must hold role, name, key_id, public_key and sig strings", f"signatures[{i}]")
            parsed.append(CheckpointSignature(*(s[k] for k in names)))
        return cls(body["log_id"], size, body["root_hash"], body["head_hash"], body["time"], tuple(parsed))


def checkpoint(store: Store, key: LedgerKey, *, now: datetime | None = None) -> Checkpoint:
    """Write a checkpoint of the whole ledger, signed by the ledger key, and return it.

    Holds the append lock while it extends the Merkle node cache to the head, computes the
    root, signs and records the checkpoint, so the checkpoint is exactly the head at that
    moment. Call it after every round step and whenever a party asks for one.
    """
    private = _private(key)
    log_id = public_key(private).key_id
    with open_view(store, write=True) as view:
        size = view.size()
        view.sync(size)
        root = view.root(size)
        head = view.backend.leaves(size - 1, size)[0].hex() if size else GENESIS_HASH
        cp = Checkpoint(log_id, size, root.hex(), head, format_time(now or datetime.now(UTC)))
        cp = cp.sign(private, role="ledger", name="ledger")
        if isinstance(store, MemoryStore):
            store.checkpoint_bodies.append(cp.text())
        else:
            backend: Any = view.backend
            conn: sa.Connection = backend.conn
            next_id = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(CHECKPOINTS.c.id), 0))).scalar() or 0)
            conn.execute(CHECKPOINTS.insert().values(id=next_id + 1, tree_size=size, root_hash=cp.root_hash,
                                                     created_at=cp.time, key_id=log_id, body=cp.text()))
    return cp


def stored_checkpoints(store: Store) -> list[tuple[int, Checkpoint | str]]:
    """The checkpoints recorded in the ledger, in order: (id, checkpoint) or (id, why it is unreadable)."""
    if isinstance(store, MemoryStore):
        texts = list(enumerate(store.checkpoint_bodies, start=1))
    else:
        from dosewise.ledger.sql import SQLStore

        if not isinstance(store, SQLStore):
            return []
        with store.engine.connect() as conn:
            if not sa.inspect(conn).has_table(CHECKPOINTS.name):
                return []
            texts = [(int(i), str(b)) for i, b in conn.execute(
                sa.select(CHECKPOINTS.c.id, CHECKPOINTS.c.body).order_by(CHECKPOINTS.c.id))]
            conn.rollback()
    out: list[tuple[int, Checkpoint | str]] = []
    for i, text in texts:
        try:
            out.append((i, Checkpoint.from_json(json.loads(text))))
        except (ValueError, InputError) as exc:
            out.append((i, f"stored checkpoint {i} cannot be read: {exc}"))
    return out


def latest_covering(store: Store, size: int) -> Checkpoint:
    """The latest valid stored checkpoint whose tree holds at least ``size`` events."""
    for _, cp in reversed(stored_checkpoints(store)):
        if isinstance(cp, Checkpoint) and cp.tree_size >= size and not cp.problems():
            return cp
    raise LedgerError(f"no checkpoint covers seq {size} yet; write one with `dosewise ledger checkpoint`")


def write_file(cp: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint file (indented JSON)."""
    Path(path).write_text(json.dumps(cp.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_file(path: str | Path) -> Checkpoint:
    """Read a checkpoint file (or the last line of a JSON Lines checkpoint log)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("no checkpoint file here", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 text file", file=str(path)) from exc
    try:
        data = json.loads(text)
    except ValueError:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            raise InputError("not JSON", file=str(path)) from None
        return read_jsonl(path)[-1]
    return Checkpoint.from_json(data, file=str(path))


def read_jsonl(path: str | Path) -> list[Checkpoint]:
    """Every checkpoint of a JSON Lines checkpoint log, in order."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Checkpoint.from_json(json.loads(line), file=f"{path}:{n}"))
        except ValueError as exc:
            raise InputError(f"line {n} is not JSON", file=str(path)) from exc
    return out


def append_jsonl(cp: Checkpoint, path: str | Path) -> bool:
    """Append a checkpoint to a JSON Lines log (one line each, never rewritten: git-friendly).
    Returns False when the same checkpoint is already the log's last line."""
    path = Path(path)
    existing = read_jsonl(path)
    if existing and existing[-1].body() == cp.body():
        return False
    with path.open("a", encoding="utf-8") as fh:
        fh.write(cp.text() + "\n")
    return True


def export_jsonl(store: Store, path: str | Path) -> int:
    """Append every stored checkpoint not yet in the JSON Lines file ``path``; returns how many."""
    have = {json.dumps(c.body(), sort_keys=True) for c in read_jsonl(path)}
    n = 0
    with Path(path).open("a", encoding="utf-8") as fh:
        for _, cp in stored_checkpoints(store):
            if isinstance(cp, Checkpoint) and json.dumps(cp.body(), sort_keys=True) not in have:
                fh.write(cp.text() + "\n")
                n += 1
    return n


def sizes(checkpoints: Sequence[Checkpoint]) -> list[int]:
    return sorted({c.tree_size for c in checkpoints})
