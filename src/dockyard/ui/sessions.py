"""Who is browsing: a signed session cookie, and the CSRF token every form carries.

The cookie holds the user's name, when the session ends and the CSRF token, signed with a
key kept in the index, so every worker and every instance over the same index accepts it.
It is `HttpOnly`, `SameSite=Strict`, and `Secure` when the registry is reached over TLS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from dockyard.index.base import Index

COOKIE = "dockyard_session"
KEY_META = "ui_session_key"
LIFETIME = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    user: str | None  # None: nobody has logged in
    csrf: str
    expires: float


def new_session(user: str | None, lifetime: float = LIFETIME) -> Session:
    return Session(user, secrets.token_urlsafe(24), time.time() + lifetime)


class SessionSigner:
    def __init__(self, index: Index) -> None:
        self.index = index
        self._key: bytes | None = None

    async def key(self) -> bytes:
        """The signing key: made once per index, by whichever worker first needs it."""
        if self._key is None:
            async with self.index.writing() as db:
                stored = await db.get_meta(KEY_META)
                if stored is None:
                    stored = secrets.token_hex(32)
                    await db.set_meta(KEY_META, stored)
            self._key = bytes.fromhex(stored)
        return self._key

    async def encode(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(
            {"u": session.user, "c": session.csrf, "e": int(session.expires)},
            separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(await self.key(), payload)}"

    async def decode(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None if it is missing, forged or over."""
        if not cookie or "." not in cookie or len(cookie) > 4096:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(await self.key(), payload)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user, csrf, expires = fields["u"], fields["c"], float(fields["e"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if expires < time.time() or not isinstance(csrf, str) \
                or not (user is None or isinstance(user, str)):
            return None
        return Session(user, csrf, expires)

    @staticmethod
    def _sign(key: bytes, payload: str) -> str:
        digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def cookie_header(value: str, path: str, secure: bool, max_age: int) -> str:
    """A Set-Cookie value for the session cookie (`max_age` 0 ends it)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE] = value
    morsel = cookie[COOKIE]
    morsel["path"] = path
    morsel["max-age"] = str(max_age)
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()


def read_cookie(header: str | None, name: str = COOKIE) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header or "")
    except CookieError:
        return None
    morsel = cookie.get(name)
    return None if morsel is None else morsel.value
