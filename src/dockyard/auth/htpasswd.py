"""Basic authentication against an htpasswd file of bcrypt entries (`htpasswd -B`), as
distribution's `auth.htpasswd`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path

import bcrypt

from dockyard.auth.access import Access
from dockyard.auth.base import AuthDenied, Authenticator, Identity, quoted
from dockyard.auth.throttle import LoginThrottle

# bcrypt is slow on purpose; a verified header is remembered for a while so that each
# request of a push does not pay for it again.
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 4096


class HtpasswdFile:
    """Users and bcrypt hashes, re-read when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._users: dict[str, bytes] = {}

    def users(self) -> dict[str, bytes]:
        status = os.stat(self.path)
        stamp = (status.st_mtime, status.st_size)
        if stamp != self._stamp:
            self._users = parse_htpasswd(Path(self.path).read_text(encoding="utf-8"))
            self._stamp = stamp
        return self._users


def parse_htpasswd(text: str) -> dict[str, bytes]:
    users = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        user, _, hashed = line.partition(":")
        if hashed.startswith(("$2a$", "$2b$", "$2y$")):
            users[user] = hashed.encode()
    return users


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class HtpasswdAuthenticator(Authenticator):
    def __init__(self, realm: str, path: str, throttle: LoginThrottle | None = None) -> None:
        self.realm = realm
        self.file = HtpasswdFile(path)
        self.throttle = throttle or LoginThrottle()
        self._verified: OrderedDict[str, tuple[str, float, bytes]] = OrderedDict()

    @property
    def challenge(self) -> str:
        return f"Basic realm={quoted(self.realm)}"

    async def authenticate(self, authorization: str | None, client: str, access: list[Access]
                           ) -> Identity:
        credentials = basic_credentials(authorization)
        if credentials is None:
            raise AuthDenied("authentication required", self.challenge)
        user, password = credentials
        hashed = self.file.users().get(user)
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        remembered = self._verified.get(key)
        if remembered is not None and hashed is not None and remembered[2] == hashed \
                and remembered[1] > time.monotonic():
            return Identity(user)
        if self.throttle.blocked(client):
            raise AuthDenied("too many failed logins; try again later", self.challenge,
                             throttled=True)
        # bcrypt takes tens of milliseconds: off the event loop.
        if hashed is None or not await asyncio.to_thread(bcrypt.checkpw, password.encode(),
                                                         hashed):
            self.throttle.failed(client)
            raise AuthDenied("invalid username or password", self.challenge)
        self._verified[key] = (user, time.monotonic() + CACHE_SECONDS, hashed)
        while len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return Identity(user)


def hash_password(password: str, rounds: int = 10) -> str:
    """A bcrypt entry as `htpasswd -B` writes it."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
