"""Ed25519 key files for the parties and for the ledger itself.

A private key lives in one file, written once with mode 0600 (PKCS#8 PEM, as the
``cryptography`` package writes it) and refused when group or others can read it.
Its content never appears in the ledger, a log, an error message or the output of
a command: only the public key (base64 of the 32 raw bytes) and the *key id*
(the first 32 hex digits of the SHA-256 of the raw public key) are shown.

The ledger's own key (which signs checkpoints) is found through the
``DOSEWISE_LEDGER_KEY`` environment variable or given explicitly; it is never
stored in the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from dosewise.errors import InputError

__all__ = [
    "LEDGER_KEY_ENV",
    "PublicKey",
    "generate",
    "key_id",
    "ledger_key_path",
    "load_private",
    "public_key",
    "read_public",
]

LEDGER_KEY_ENV = "DOSEWISE_LEDGER_KEY"
"""Environment variable naming the file of the ledger's private key (signs checkpoints)."""


def key_id(raw_public: bytes) -> str:
    """The id of a public key: the first 32 hex digits of SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(raw_public).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A party's public key: raw bytes, their base64 form and the key id."""

    raw: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @classmethod
    def from_b64(cls, text: object, *, field: str = "public_key") -> PublicKey:
        if not isinstance(text, str):
            raise InputError("must be the base64 of a 32-byte Ed25519 public key", field=field, value=repr(text)[:80])
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise InputError("not valid base64", field=field, value=text[:80]) from exc
        if len(raw) != 32:
            raise InputError("an Ed25519 public key has 32 bytes", field=field, value=text[:80])
        return cls(raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message`` (checked by
        libsodium through PyNaCl, like every signature check of the ledger)."""
        try:
            VerifyKey(self.raw).verify(message, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True


def public_key(private: Ed25519PrivateKey) -> PublicKey:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw)


def generate(path: str | Path) -> PublicKey:
    """Create a new key pair; write the private key to ``path`` (mode 0600, refused if the file
    exists) and ``path.pub`` (the public key, base64). Returns the public key."""
    path = Path(path)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InputError("a key file already exists here; refusing to overwrite it", file=str(path)) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = public_key(private)
    Path(f"{path}.pub").write_text(f"{pub.b64}\n", encoding="ascii")
    return pub


def _not_private(data: bytes) -> str | None:
    """What a file that is not a PEM private key looks like (None: it may be one)."""
    text = data.strip()
    if b"-----BEGIN" in text and b"PRIVATE KEY-----" in text:
        return None
    if b"-----BEGIN PUBLIC KEY-----" in text:
        return "this is a PEM public key, not a private key"
    try:
        if len(base64.b64decode(text, validate=True)) == 32:
            return "this is a public key (the .pub file), not a private key; give the private key file"
    except (binascii.Error, ValueError):
        pass
    if text[:1] in (b"{", b"["):
        return "this is a JSON file, not a private key file"
    return "not a private key file (a private key file is the PEM one `dosewise keys gen` writes)"


def load_private(path: str | Path) -> Ed25519PrivateKey:
    """Read a private key file written by :func:`generate`.

    Refused (:class:`~dosewise.errors.InputError`, naming the file but never its content)
    when it is missing, not a private key (a public key or any other file is said to be
    that first), readable by group or others, or not an Ed25519 private key.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("no key file here", file=str(path)) from exc
    except IsADirectoryError as exc:
        raise InputError("a folder, not a key file", file=str(path)) from exc
    what = _not_private(data)
    if what is not None:
        raise InputError(what, file=str(path))
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError("private key file is accessible to group or others; chmod 600 it", file=str(path))
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError("not an unencrypted PEM private key", file=str(path)) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise InputError("not an Ed25519 private key", file=str(path))
    return private


def read_public(path: str | Path) -> PublicKey:
    """The public key in ``path``: a ``.pub`` file (base64 of the 32 raw bytes) or a private key
    file (its public half)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("no key file here", file=str(path)) from exc
    except IsADirectoryError as exc:
        raise InputError("a folder, not a key file", file=str(path)) from exc
    if _not_private(data) is None:
        return public_key(load_private(path))
    try:
        return PublicKey.from_b64(data.decode("ascii").strip(), field="key")
    except (UnicodeDecodeError, InputError):
        raise InputError("neither a public key (.pub: base64 of 32 bytes) nor a private key file",
                         file=str(path)) from None


def ledger_key_path(path: str | Path | None = None) -> Path:
    """The ledger key file: ``path`` if given, else ``$DOSEWISE_LEDGER_KEY``."""
    chosen = path or os.environ.get(LEDGER_KEY_ENV)
    if not chosen:
        raise InputError(f"no ledger key: give --key or set {LEDGER_KEY_ENV} to the ledger's private key file")
    return Path(chosen)
