"""dockyard's own token issuer (the `realm` of token authentication): it checks Basic
credentials against an htpasswd file, or lets the client in anonymously, and signs a JWT
granting what the access rules allow of the requested scopes (the Docker registry token
specification)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from dockyard.auth.access import Access
from dockyard.auth.base import AuthDenied, quoted
from dockyard.auth.htpasswd import HtpasswdAuthenticator
from dockyard.auth.keys import PrivateKey, libtrust_key_id, signing_algorithm
from dockyard.auth.policy import AccessPolicy


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str  # RFC 3339
    access: tuple[Access, ...]


class UnknownService(ValueError):
    """A token was asked for another service than the one this issuer signs for."""


class TokenIssuer:
    def __init__(self, key: PrivateKey, service: str, issuer: str, expiration: float,
                 policy: AccessPolicy, passwords: HtpasswdAuthenticator | None) -> None:
        self.key = key
        self.algorithm = signing_algorithm(key)
        self.key_id = libtrust_key_id(key.public_key())
        self.service = service
        self.issuer = issuer
        self.expiration = expiration
        self.policy = policy
        self.passwords = passwords

    @property
    def challenge(self) -> str:
        return f"Basic realm={quoted(self.service)}"

    async def aclose(self) -> None:
        if self.passwords is not None:
            await self.passwords.aclose()

    async def login(self, authorization: str | None, client: str) -> str | None:
        """The user whose Basic credentials these are; None for an anonymous client (no
        Authorization header). Wrong or unusable credentials raise AuthDenied."""
        if authorization is None or not authorization.strip():
            return None
        if self.passwords is None:
            raise AuthDenied("this token issuer has no users (auth.issuer.htpasswd)",
                             self.challenge)
        identity = await self.passwords.authenticate(authorization, client, [])
        return identity.user

    def issue(self, user: str | None, service: str | None, requested: Sequence[Access],
              at: float | None = None) -> IssuedToken:
        """A token for `user` (None: anonymous) granting what the rules allow of
        `requested`."""
        if service is not None and service != self.service:
            raise UnknownService(f"unknown service {service[:100]!r}; this issuer signs "
                                 f"tokens for {self.service!r}")
        granted = self.policy.grant(user, requested)
        issued = int(at if at is not None else time.time())
        lifetime = max(1, int(self.expiration))
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": issued + lifetime,
            "nbf": issued,
            "iat": issued,
            "jti": secrets.token_urlsafe(16),
            "access": [{"type": item.type, "name": item.name, "actions": list(item.actions)}
                       for item in granted],
        }
        token = jwt.encode(claims, self.key, algorithm=self.algorithm,
                           headers={"kid": self.key_id})
        stamp = datetime.fromtimestamp(issued, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return IssuedToken(token, lifetime, stamp, tuple(granted))
