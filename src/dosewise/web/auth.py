"""Log in with an API key, then a session cookie.

The key is posted once, in a form body (never a URL), checked like a bearer key, and forgotten:
the cookie holds only the key id, an expiry and an HMAC-SHA256 signature under a server secret
(``DOSEWISE_WEB_SECRET``, else a random one per process). The cookie is ``HttpOnly`` and
``SameSite=Strict``; every form also carries a token derived from the cookie, checked on POST.
Each request reads the key's row again, so a revoked key's session ends at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

from fastapi import Request

from dosewise.app import Desk
from dosewise.errors import NotFoundError
from dosewise.ledger.identities import Identity

__all__ = ["COOKIE", "READERS", "SESSION_SECONDS", "LoginRequired", "PageError", "Sessions"]

COOKIE = "dw_session"
SESSION_SECONDS = 8 * 3600
READERS = ("admin", "coordinator", "reviewer", "donor", "observer")
"""Roles that see every participant's offers (participants see their own)."""


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form."""


class PageError(Exception):
    """A page that cannot be shown to this caller (its status and a sentence saying why)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Sessions:
    """Signs and reads session cookies."""

    def __init__(self, secret: bytes | None = None) -> None:
        env = os.environ.get("DOSEWISE_WEB_SECRET")
        self._secret = secret or (env.encode() if env else secrets.token_bytes(32))

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, ident: Identity, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{ident.key_id}.{expires}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body)}"

    def key_id(self, cookie: str | None, *, now: float | None = None) -> str | None:
        """The key id of a valid, unexpired cookie, else None."""
        if not cookie or len(cookie) > 200:
            return None
        body, _, sig = cookie.rpartition(".")
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        key_id, expires, _nonce = [*body.split("."), "", "", ""][:3]
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return key_id

    def csrf(self, cookie: str) -> str:
        return self._sign(f"csrf:{cookie}")

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token and hmac.compare_digest(self.csrf(cookie), token))

    def identity(self, request: Request, desk: Desk) -> Identity:
        """The caller's identity from its cookie (``LoginRequired`` without a live session)."""
        key_id = self.key_id(request.cookies.get(COOKIE))
        if key_id is None:
            raise LoginRequired
        try:
            ident = desk.keys.get(key_id)
        except NotFoundError:
            raise LoginRequired from None
        if ident.revoked_at is not None:
            raise LoginRequired
        return ident
