"""Authentication with an upstream registry as docker does it: read the ``WWW-Authenticate``
challenge of a 401, answer ``Basic`` with the configured credentials, or fetch a bearer token
from the ``Bearer`` challenge's realm and keep it for its lifetime."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# Tokens are taken as expired this long before the issuer says (at most half their life), so
# a request does not set out with a token that lapses on the way.
EXPIRY_MARGIN = 10.0
# What the token spec says to assume when the issuer gives no `expires_in`.
DEFAULT_TOKEN_LIFETIME = 60.0

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# name=value, the value quoted or bare (bare values are taken up to a comma or space: some
# servers leave a URL unquoted).
_PARAM = re.compile(r"""([A-Za-z0-9!#$%&'*+.^_`|~-]+)[ \t]*=[ \t]*"""
                    r"""(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))""")
_SEPARATORS = re.compile(r"[\s,]*")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower-cased
    params: dict[str, str] = field(default_factory=dict)  # names lower-cased


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` header (RFC 9110 section 11.6.1).

    A token followed by ``=`` is a parameter of the challenge before it, anything else starts
    a new challenge; values may be quoted, and a quoted value may hold commas (a scope of
    ``pull,push``). Unparseable rests are skipped rather than refused: a registry's header
    that we half understand can still name a realm.
    """
    challenges: list[Challenge] = []
    position = 0
    while True:
        separators = _SEPARATORS.match(header, position)
        position = separators.end() if separators is not None else position
        if position >= len(header):
            return challenges
        param = _PARAM.match(header, position)
        if param is not None:
            if challenges:  # (a parameter before any scheme belongs to nothing)
                name, quoted, bare = param.groups()
                value = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
                challenges[-1].params[name.lower()] = value
            position = param.end()
            continue
        scheme = _TOKEN.match(header, position)
        if scheme is not None:
            challenges.append(Challenge(scheme.group(0).lower()))
            position = scheme.end()
        else:
            position += 1  # a stray character


def basic_authorization(username: str, password: str) -> str:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {encoded}"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """What a bearer token is good for: the realm that issued it, for a service and scope."""

    realm: str
    service: str | None
    scope: str


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float  # on the monotonic clock


# Fetches a token: its value and its lifetime in seconds.
TokenFetcher = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """Bearer tokens by what they are for, each kept until shortly before it expires.

    One lock per key makes concurrent requests that need the same token wait for a single
    fetch instead of each asking the token server.
    """

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, _Token] = {}
        self._locks: dict[TokenKey, asyncio.Lock] = {}

    def get(self, key: TokenKey) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires <= time.monotonic():
            return None
        return token.value

    async def obtain(self, key: TokenKey, fetch: TokenFetcher,
                     refused: str | None = None) -> tuple[str, bool]:
        """A token for `key` and whether it was fetched just now. `refused` is a token the
        registry has just turned down: it is forgotten (if it is still the one kept) so that
        a fresh one is fetched, while a token another request fetched meanwhile is reused."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._tokens.get(key)
            if kept is not None and kept.value == refused:
                del self._tokens[key]
            cached = self.get(key)
            if cached is not None:
                return cached, False
            value, lifetime = await fetch()
            margin = min(EXPIRY_MARGIN, lifetime / 2)
            self._prune()
            self._tokens[key] = _Token(value, time.monotonic() + lifetime - margin)
            return value, True

    def _prune(self) -> None:
        """Forget expired tokens and idle locks, which would otherwise pile up with every
        repository ever pulled."""
        now = time.monotonic()
        for key in [key for key, token in self._tokens.items() if token.expires <= now]:
            del self._tokens[key]
        for key in [key for key, lock in self._locks.items()
                    if key not in self._tokens and not lock.locked()]:
            del self._locks[key]
