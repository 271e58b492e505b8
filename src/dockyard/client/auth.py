"""Credentials and the authentication flow.

Credentials come from (first found wins) explicit values, the environment
(``DOCKYARD_USERNAME``/``DOCKYARD_PASSWORD``) and docker's config file
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, ``auths.<host>.auth``).

`RegistryAuth` answers the registry's ``WWW-Authenticate`` challenge, and only for requests to
the registry's own origin (scheme, host, port): credentials never go to another server a
response points at. Only ``Basic`` is spoken today; a ``Bearer`` scheme (token server) would
be one more branch in `_answer` that fetches a token with the same credentials from the
challenge's realm (the one other origin that may get them, for that token request alone) and
caches it per scope.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from dockyard.client.origin import Origin, origin_of

ENV_USERNAME = "DOCKYARD_USERNAME"
ENV_PASSWORD = "DOCKYARD_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # "command line", "environment" or the config file's path, for messages

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def docker_config_path(env: Mapping[str, str]) -> Path:
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _auth_key_host(key: str) -> str:
    """The ``host:port`` of an ``auths`` key, which may be a URL (``https://host/v1/``)."""
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key.strip())
    return key.split("/", 1)[0].lower()


def from_docker_config(host: str, env: Mapping[str, str]) -> Credentials | None:
    path = docker_config_path(env)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _auth_key_host(str(key)) != host.lower() or not isinstance(entry, dict):
            continue
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            username, colon, password = decoded.partition(":")
            if colon:
                return Credentials(username, password, str(path))
        plain_user, plain_password = entry.get("username"), entry.get("password")
        if isinstance(plain_user, str) and isinstance(plain_password, str):
            return Credentials(plain_user, plain_password, str(path))
    return None


def find_credentials(host: str, username: str | None = None, password: str | None = None,
                     env: Mapping[str, str] | None = None) -> Credentials | None:
    """Explicit values, then the environment, then docker's config file."""
    env = os.environ if env is None else env
    if username is not None:
        return Credentials(username, password if password is not None
                           else env.get(ENV_PASSWORD, ""), "command line")
    if env.get(ENV_USERNAME):
        return Credentials(env[ENV_USERNAME], env.get(ENV_PASSWORD, ""), "environment")
    return from_docker_config(host, env)


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_OUTSIDE_QUOTES_COMMA = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


def challenge_schemes(header: str) -> list[str]:
    """The auth schemes (lower-cased) offered by a ``WWW-Authenticate`` header.

    The header is a comma-separated list in which a scheme starts a challenge
    (``Basic realm="x"``) and ``name=value`` items are that challenge's parameters.
    """
    schemes: list[str] = []
    for part in _OUTSIDE_QUOTES_COMMA.split(header):
        part = part.strip()
        match = _TOKEN.match(part)
        if match is None:
            continue
        rest = part[match.end():]
        if rest.lstrip().startswith("="):
            continue  # a parameter of the previous challenge
        if rest == "" or rest[0].isspace():
            schemes.append(match.group(0).lower())
    return schemes


class UnsupportedChallenge(Exception):
    def __init__(self, schemes: list[str]) -> None:
        super().__init__(", ".join(schemes) or "none")
        self.schemes = schemes


class RegistryAuth(httpx.Auth):
    """Send the request; on a 401 answer the challenge and retry once.

    Once the registry has accepted Basic credentials, later requests carry them from the
    start (saving a round trip each). Requests to any other origin than the registry's are
    sent as they are, and their challenges are not answered.
    """

    def __init__(self, credentials: Credentials | None, origin: Origin) -> None:
        self.credentials = credentials
        self.origin = origin
        self._preemptive: str | None = None
        self.sent_credentials = False  # whether the last 401 came despite credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(request.url) != self.origin:
            self.sent_credentials = False
            yield request
            return
        if self._preemptive is not None:
            request.headers["Authorization"] = self._preemptive
            self.sent_credentials = True
        else:
            self.sent_credentials = False
        response = yield request
        if response.status_code != 401 or self.credentials is None:
            return
        if self._preemptive is not None:
            return  # the credentials we sent were refused
        header = self._answer(response.headers.get("WWW-Authenticate", ""))
        if header is None:
            return
        request.headers["Authorization"] = header
        self.sent_credentials = True
        response = yield request
        if response.status_code != 401:
            self._preemptive = header

    def _answer(self, challenge: str) -> str | None:
        assert self.credentials is not None
        schemes = challenge_schemes(challenge)
        if "basic" in schemes:
            return self.credentials.basic_header()
        if schemes:
            raise UnsupportedChallenge(schemes)
        return None
