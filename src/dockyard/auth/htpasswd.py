"""Basic authentication against an htpasswd file of bcrypt entries (`htpasswd -B`), as
distribution's `auth.htpasswd`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import math
import os
import re
import secrets
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
BCRYPT_MAX_BYTES = 72
DEFAULT_COST = 10


# A file changed in place (same inode) is read only once it has been still this long:
# `htpasswd` and editors truncate it and write it again, and a reader in between finds it
# empty or cut short. A file renamed into place is complete and is read at once.
SETTLE_SECONDS = 1.0
# A process starting while the file is empty or torn half-way through such an edit has no
# users to keep: it waits for the edit to finish, for at most this long.
START_WAIT_SECONDS = 10.0
START_POLL_SECONDS = 0.05
BCRYPT_MARKERS = ("$2a$", "$2b$", "$2y$")
BCRYPT_HASH = re.compile(rb"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")

log = logging.getLogger("dockyard.auth")


class TornFile(ValueError):
    """An htpasswd file that cannot be whole: a line without ':' or a cut-off bcrypt hash."""


class HtpasswdFile:
    """Users and bcrypt hashes, re-read when the file changes. A file that is empty, or
    cannot be whole, leaves the users read before in place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, ...] | None = None  # of the version last read
        self._users: dict[str, bytes] = {}
        self._changed: tuple[tuple[int, ...], float] | None = None  # seen, not yet settled
        self._read_at_start()

    def _read_at_start(self) -> None:
        """The first read, so that an edit under way later finds users to keep. A file found
        without users just after a change may be half-way through an in-place edit
        (truncated, not yet written again): wait until it has users or is still."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        while not self.users() and self._changed_lately() and time.monotonic() < deadline:
            time.sleep(START_POLL_SECONDS)
        if not self._users:
            log.warning("htpasswd file %s has no users", self.path)

    def _changed_lately(self) -> bool:
        """Whether the file changed less than SETTLE_SECONDS ago (or has an mtime ahead of
        the clock), so that an edit of it may be under way."""
        try:
            return time.time() - os.stat(self.path).st_mtime < SETTLE_SECONDS
        except OSError:
            return False

    @property
    def settled(self) -> bool:
        """False while a change of the file waits to be read."""
        return self._changed is None

    def users(self) -> dict[str, bytes]:
        try:
            status = os.stat(self.path)
        except OSError:
            return self._users  # replaced by a tool that unlinks first: keep the users
        stamp = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
        if stamp == self._stamp:
            self._changed = None
            return self._users
        # Waiting protects the users read before; with none there is nothing to protect,
        # and a process that started on a file without users takes its first ones at once.
        if self._users and self._stamp is not None and stamp[:2] == self._stamp[:2] \
                and not self._still_since(stamp, status.st_mtime):
            return self._users
        try:
            data = Path(self.path).read_bytes()
            after = os.stat(self.path)
            if (after.st_ino, after.st_mtime_ns, after.st_size) != stamp[1:]:
                return self._users  # written to while read: take it next time
        except OSError:
            return self._users
        self._stamp = stamp
        self._changed = None
        try:
            users = parse_htpasswd(data.decode("utf-8"))
        except (UnicodeDecodeError, TornFile) as error:
            reason = str(error) if isinstance(error, TornFile) else "not UTF-8"
            log.warning("htpasswd file %s is unusable (%s); keeping the %d users read before",
                        self.path, reason, len(self._users))
            return self._users
        if not users and self._users:
            log.warning("htpasswd file %s has no users; keeping the %d users read before",
                        self.path, len(self._users))
            return self._users
        self._users = users
        return self._users

    def _still_since(self, stamp: tuple[int, ...], mtime: float) -> bool:
        """Whether a file changed in place has been still for SETTLE_SECONDS: by its mtime,
        or, for an mtime in the future, by how long this process has seen it unchanged."""
        now = time.monotonic()
        if self._changed is None or self._changed[0] != stamp:
            self._changed = (stamp, now)
        return time.time() - mtime >= SETTLE_SECONDS or now - self._changed[1] >= SETTLE_SECONDS


def parse_htpasswd(text: str) -> dict[str, bytes]:
    """The bcrypt users of an htpasswd file; entries of other schemes are skipped, as
    dockyard checks bcrypt only. TornFile for a file that cannot be whole."""
    users = {}
    lines = text.splitlines()
    # Every tool ends its lines with a newline; a last line without one may be cut short.
    unterminated = len(lines) if lines and not text.endswith(("\n", "\r")) else 0
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if ":" not in line:
            raise TornFile(f"line {number} has no ':'")
        user, _, hashed = line.partition(":")
        if hashed.startswith(BCRYPT_MARKERS):
            if not BCRYPT_HASH.fullmatch(hashed.encode()):
                raise TornFile(f"line {number} has a malformed bcrypt hash")
            users[user] = hashed.encode()
        elif number == unterminated and any(marker.startswith(hashed)
                                            for marker in BCRYPT_MARKERS):
            # Cut before its hash said which scheme it is: not a line of another scheme.
            raise TornFile(f"line {number} is cut short")
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
        self.throttle = throttle  # None: failed logins are not limited (auth.throttle)
        self._verified: OrderedDict[str, tuple[str, float, bytes]] = OrderedDict()
        # Checks in flight, by client and credentials: the same credentials sent on many
        # connections at once (a client's parallel first requests) are checked once.
        self._checking: dict[tuple[str, str], asyncio.Task[bool | None]] = {}

    @property
    def challenge(self) -> str:
        return f"Basic realm={quoted(self.realm)}"

    async def aclose(self) -> None:
        if self.throttle is not None:
            await self.throttle.aclose()

    async def authenticate(self, authorization: str | None, client: str, access: list[Access]
                           ) -> Identity:
        credentials = basic_credentials(authorization)
        if credentials is None:
            raise AuthDenied("authentication required", self.challenge)
        user, password = credentials
        hashed = self.file.users().get(user)
        # Remembered per client: a hit answers without the throttle, so credentials one
        # client proved must not answer another client's guesses while it is blocked.
        key = hashlib.sha256(f"{client}\0{user}\0{password}".encode()).hexdigest()
        remembered = self._verified.get(key)
        if remembered is not None and hashed is not None and remembered[2] == hashed \
                and remembered[1] > time.monotonic():
            return Identity(user)
        checking = self._checking.get((client, key))
        if checking is None:
            checking = asyncio.create_task(self._check(client, user, password, hashed, key))
            self._checking[(client, key)] = checking
            checking.add_done_callback(lambda _: self._checking.pop((client, key), None))
        # Shielded: a client that hangs up does not leave its attempt counted half-way.
        verdict = await asyncio.shield(checking)
        if verdict is None:
            window = self.throttle.window if self.throttle is not None else 60
            raise AuthDenied("too many failed logins; try again later", self.challenge,
                             throttled=True, retry_after=max(1, math.ceil(window)))
        if not verdict:
            raise AuthDenied("invalid username or password", self.challenge)
        return Identity(user)

    async def _check(self, client: str, user: str, password: str, hashed: bytes | None,
                     key: str) -> bool | None:
        """Whether the password is right; None if the client may not try now. The attempt
        is counted before bcrypt runs and forgotten if it succeeds."""
        attempt = await self.throttle.begin(client, user) if self.throttle is not None else 0
        if attempt is None:
            return None
        # An unknown user is checked against a hash of the same cost, so that answering
        # takes as long as for a wrong password and does not tell which users exist.
        # bcrypt takes tens of milliseconds: off the event loop.
        against = hashed if hashed is not None else unknown_user_hash(self.file.users())
        right = await asyncio.to_thread(check_password, password, against)
        if hashed is None or not right:
            if not self.file.settled and self.throttle is not None:
                # Perhaps refused by the file as it was before an edit: not the client's fault.
                await self.throttle.forget(attempt)
            return False
        if self.throttle is not None:
            await self.throttle.forget(attempt)
        self._verified[key] = (user, time.monotonic() + CACHE_SECONDS, hashed)
        while len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return True


def bcrypt_input(password: str) -> bytes:
    """The bytes of a password that bcrypt uses: the first 72, as htpasswd and Go's bcrypt
    (so distribution) take them; the bcrypt package refuses longer ones instead."""
    return password.encode()[:BCRYPT_MAX_BYTES]


def check_password(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(bcrypt_input(password), hashed)
    except ValueError:  # a hash the package cannot use: nothing matches it
        return False


def unknown_user_hash(users: dict[str, bytes]) -> bytes:
    """A hash no password matches, of the highest cost among the users' hashes: checking
    it costs what checking theirs does. Salt and hash are random, so that is not
    precomputable; making it takes no bcrypt run."""
    cost = max((int(hashed[4:6]) for hashed in users.values()), default=DEFAULT_COST)
    cost = min(max(cost, 4), 31)  # what bcrypt can make
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    salt = bcrypt.gensalt(cost).decode()
    filler = "".join(secrets.choice(alphabet) for _ in range(30)) + "."  # 184 bits
    return (salt + filler).encode()


def hash_password(password: str, rounds: int = DEFAULT_COST) -> str:
    """A bcrypt entry as `htpasswd -B` writes it (of the first 72 bytes, as it does)."""
    return bcrypt.hashpw(bcrypt_input(password), bcrypt.gensalt(rounds)).decode()
