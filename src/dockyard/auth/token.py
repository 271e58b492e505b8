"""Bearer token authentication, as distribution's `auth.token` (the Docker registry token
specification): clients get a JWT from an authorization server (the `realm`) and send it
as `Authorization: Bearer <jwt>`; the registry checks its signature against trusted keys,
its issuer, audience and lifetime, and that its `access` claim grants what the request
needs.

Every refusal is a 401 with a `Bearer` challenge naming the scope the request needs: no
token, a bad token (`error="invalid_token"`), or a good token without the needed access
(`error="insufficient_scope"`). Clients (docker, skopeo, podman, containerd) fetch a new
token for the challenged scope after a 401, never after a 403; the authorization server
decides what they finally get, as in distribution."""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from dockyard.auth.access import Access, grants_allow
from dockyard.auth.base import AuthDenied, Authenticator, Identity, quoted
from dockyard.auth.keys import TrustedKey

LEEWAY_SECONDS = 60.0  # clock skew tolerated on exp, nbf and iat
MAX_TOKEN_LENGTH = 64 * 1024
# Verifying a signature costs more than serving a manifest, and clients send the same token
# on every request until it expires; verified tokens are remembered, up to this many bytes
# per process as Python holds them (a token of a few scopes takes about 1 KiB). One that
# grants so much that it would take more than MAX_CACHED_TOKEN_BYTES is verified each time.
CACHE_BYTES = 4 * 1024 * 1024
MAX_CACHED_TOKEN_BYTES = 64 * 1024
ENTRY_OVERHEAD = 128  # the cache's own bookkeeping per token (hash slot, order links)
TIME_CLAIMS = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """A token that cannot be used; the message says why (safe to show the client)."""


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return token or None


class TokenVerifier:
    """Checks tokens; shared by the registry's authenticator and tests of an issuer."""

    def __init__(self, service: str, issuer: str, keys: Sequence[TrustedKey],
                 algorithms: Sequence[str] | None = None, leeway: float = LEEWAY_SECONDS
                 ) -> None:
        self.service = service
        self.issuer = issuer
        self.keys = tuple(keys)
        self.algorithms = frozenset(algorithms) if algorithms else None
        self.leeway = leeway

    def _candidates(self, algorithm: str, key_id: object) -> list[TrustedKey]:
        usable = [key for key in self.keys if algorithm in key.algorithms]
        if isinstance(key_id, str):
            # A kid we know picks its key; an unknown one (another naming scheme) tries all.
            named = [key for key in usable if key_id in key.key_ids]
            if named:
                return named
        return usable

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; else InvalidToken."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or (self.algorithms is not None
                                              and algorithm not in self.algorithms):
            raise InvalidToken(f"signing algorithm {str(algorithm)[:20]!r} not accepted")
        candidates = self._candidates(algorithm, header.get("kid"))
        if not candidates:
            raise InvalidToken(f"no trusted key for algorithm {algorithm[:20]!r}")
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key.key, algorithms=[algorithm], audience=self.service,
                    issuer=self.issuer, leeway=self.leeway,
                    options={"require": ["exp", "iss", "aud"], "verify_signature": True})
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise InvalidToken("token expired") from None
            except jwt.ImmatureSignatureError:
                raise InvalidToken("token not valid yet") from None
            except jwt.InvalidAudienceError:
                raise InvalidToken(f"token not meant for service {self.service!r}") from None
            except jwt.InvalidIssuerError:
                raise InvalidToken("token from an untrusted issuer") from None
            except jwt.MissingRequiredClaimError as error:
                raise InvalidToken(f"token has no {error.claim!r} claim") from None
            except (jwt.PyJWTError, ValueError, OverflowError):
                raise InvalidToken("malformed token") from None
            check_time_claims(claims)
            return claims
        raise InvalidToken("token signature does not verify with any trusted key")


def check_time_claims(claims: dict[str, Any]) -> None:
    """exp, nbf and iat must be JSON numbers, as RFC 7519 says. PyJWT also takes numeric
    strings, which the rest of dockyard would read as no limit at all."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise InvalidToken(f"the {name!r} claim is not a number")


def granted_access(claims: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """The `access` claim, as actions per (type, name)."""
    entries = claims.get("access") or []
    if not isinstance(entries, list):
        raise InvalidToken("access claim is not a list")
    granted: dict[tuple[str, str], frozenset[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidToken("access claim entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions") or []
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(
                actions, list) or not all(isinstance(action, str) for action in actions):
            raise InvalidToken("access claim entry needs type, name and a list of actions")
        key = (kind, name)
        granted[key] = granted.get(key, frozenset()) | frozenset(actions)
    return granted


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a token whose signature, issuer and audience checked out grants, and the times
    between which it may be used (its nbf and exp, widened by the leeway)."""

    granted: dict[tuple[str, str], frozenset[str]]
    subject: str
    valid_from: float
    valid_until: float


def footprint(key: bytes, verified: VerifiedToken) -> int:
    """Bytes a remembered token keeps in memory: its key and everything decoded from it."""
    size = ENTRY_OVERHEAD + sys.getsizeof(key) + sys.getsizeof(verified) \
        + sys.getsizeof(verified.subject) + 2 * sys.getsizeof(verified.valid_from) \
        + sys.getsizeof(verified.granted)
    for resource, actions in verified.granted.items():
        size += sys.getsizeof(resource) + sum(sys.getsizeof(part) for part in resource) \
            + sys.getsizeof(actions) + sum(sys.getsizeof(action) for action in actions)
    return size


def _number(claims: dict[str, Any], name: str, missing: float) -> float:
    value = claims.get(name)
    return float(value) if isinstance(value, int | float) else missing


class TokenAuthenticator(Authenticator):
    def __init__(self, realm: str, verifier: TokenVerifier) -> None:
        self.realm = realm
        self.verifier = verifier
        # By the SHA-256 of the token, least recently used first, with each one's footprint.
        self._verified: OrderedDict[bytes, tuple[VerifiedToken, int]] = OrderedDict()
        self._cached_bytes = 0

    def verified(self, token: str) -> VerifiedToken:
        """The grants of a valid token; else InvalidToken. A token verified before is taken
        from memory while its lifetime lasts; its claims cannot change without changing its
        signed bytes, and the trusted keys are fixed for the life of the process."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        known = self._verified.get(key)
        if known is not None and known[0].valid_from <= now < known[0].valid_until:
            self._verified.move_to_end(key)
            return known[0]
        claims = self.verifier.verify(token)  # raises for an expired or immature one
        subject = claims.get("sub")
        leeway = self.verifier.leeway
        verified = VerifiedToken(granted_access(claims),
                                 subject if isinstance(subject, str) else "",
                                 _number(claims, "nbf", -math.inf) - leeway,
                                 _number(claims, "exp", math.inf) + leeway)
        self._remember(key, verified)
        return verified

    def _remember(self, key: bytes, verified: VerifiedToken) -> None:
        size = footprint(key, verified)
        if size > MAX_CACHED_TOKEN_BYTES:
            return
        replaced = self._verified.pop(key, None)
        if replaced is not None:
            self._cached_bytes -= replaced[1]
        self._verified[key] = (verified, size)
        self._cached_bytes += size
        while self._cached_bytes > CACHE_BYTES:
            _, (_, evicted) = self._verified.popitem(last=False)
            self._cached_bytes -= evicted

    def challenge(self, access: list[Access], error: str | None = None) -> str:
        parts = [f"Bearer realm={quoted(self.realm)}",
                 f"service={quoted(self.verifier.service)}"]
        if access:
            parts.append(f"scope={quoted(' '.join(item.scope for item in access))}")
        if error:
            parts.append(f'error="{error}"')
        return ",".join(parts)

    async def authenticate(self, authorization: str | None, client: str, access: list[Access]
                           ) -> Identity:
        token = bearer_token(authorization)
        if token is None:
            raise AuthDenied("authentication required", self.challenge(access))
        try:
            verified = self.verified(token)
        except InvalidToken as invalid:
            raise AuthDenied(f"invalid token: {invalid}",
                             self.challenge(access, "invalid_token")) from None
        if not all(grants_allow(verified.granted, item) for item in access):
            raise AuthDenied("insufficient scope: the token does not grant "
                             + " ".join(item.scope for item in access),
                             self.challenge(access, "insufficient_scope"))
        return Identity(verified.subject, verified.granted)
