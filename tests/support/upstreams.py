"""Upstream registries for the pull-through cache's tests: distribution 2.8.2 (registry:2)
run plain, behind htpasswd (Basic) authentication, or behind token authentication with
dockyard's own issuer as its token server; and sample images pushed into them.

    with run_upstream(tmp_path, "token") as upstream:
        image = upstream.push_image("team/app", "v1")       # 3 layers, OCI
        index = upstream.push_index("team/app", "multi")    # 2 platforms, OCI index
        config = upstream.proxy_config()                    # dockyard's `proxy` section
        with upstream.client() as http:                     # push/pull as upstream.username
            ...
"""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    digest_of,
    make_image,
    make_index,
    push_image,
)
from tests.support.server import RunningRegistry, require_tool, run_registry
from tests.support.tokens import PASSWORDS, RULES, TokenSetup, run_issuer, write_users

AuthKind = Literal["none", "htpasswd", "token"]
AUTH_KINDS: tuple[AuthKind, ...] = ("none", "htpasswd", "token")

# The user the upstream's credentials belong to: every right on every repository, in the
# htpasswd file and in the issuer's rules alike.
USERNAME = "alice"
PASSWORD = PASSWORDS[USERNAME]

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class IssuerAuth(httpx.Auth):
    """Token authentication for pushing in tests: on a 401, a token for the challenge's
    scope from its realm, with Basic credentials."""

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._basic = f"Basic {basic}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.startswith("Bearer "):
            return
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        query = {name: params[name] for name in ("service", "scope") if name in params}
        issued = yield httpx.Request("GET", params["realm"], params=query,
                                     headers={"Authorization": self._basic})
        assert issued.status_code == 200, issued.text
        request.headers["Authorization"] = f"Bearer {issued.json()['token']}"
        yield request


@dataclass(frozen=True)
class PushedIndex:
    """A multi-platform index and the platform images it lists."""

    manifest: bytes
    media_type: str
    children: list[Image]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


@dataclass
class UpstreamRegistry:
    """A running distribution an upstream can be made of; `username` and `password` are
    None without authentication. With token auth, `issuer` is the dockyard issuing the
    tokens (its access log counts the token requests)."""

    auth: AuthKind
    registry: RunningRegistry
    username: str | None
    password: str | None
    issuer: TokenSetup | None = None

    @property
    def url(self) -> str:
        return self.registry.url

    @property
    def host(self) -> str:
        return self.registry.host

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client of the upstream that may push and pull anywhere."""
        auth: httpx.Auth | tuple[str, str] | None = None
        if self.auth == "htpasswd":
            auth = (USERNAME, PASSWORD)
        elif self.auth == "token":
            auth = IssuerAuth(USERNAME, PASSWORD)
        return self.registry.client(**{"auth": auth, **kwargs})

    def proxy_config(self, **extra: Any) -> dict[str, Any]:
        """The `proxy` section of a registry that caches this upstream (plus `extra`, e.g.
        ttl)."""
        credentials = ({"username": self.username, "password": self.password}
                       if self.username is not None else {})
        return {"proxy": {"remoteurl": self.url, **credentials, **extra}}

    def push_image(self, name: str, tag: str, *, layers: int = 3,
                   media_type: str = OCI_MANIFEST) -> Image:
        with self.client() as http:
            return push_sample_image(http, name, tag, layers=layers, media_type=media_type)

    def push_index(self, name: str, tag: str, *, platforms: int = 2,
                   media_type: str = OCI_INDEX) -> PushedIndex:
        with self.client() as http:
            return push_sample_index(http, name, tag, platforms=platforms,
                                     media_type=media_type)


def push_sample_image(client: httpx.Client, name: str, tag: str, *, layers: int = 3,
                      media_type: str = OCI_MANIFEST) -> Image:
    """A new small image of `layers` random layers, pushed as `name:tag`."""
    image = make_image(layer_count=layers, media_type=media_type)
    push_image(client, name, tag, image)
    return image


def push_sample_index(client: httpx.Client, name: str, tag: str, *, platforms: int = 2,
                      media_type: str = OCI_INDEX) -> PushedIndex:
    """An index of `platforms` new images (each pushed by digest; Docker schema 2 images
    under a Docker manifest list, OCI images under an OCI index), pushed as `name:tag`."""
    child_type = DOCKER_MANIFEST if media_type == DOCKER_LIST else OCI_MANIFEST
    children = [make_image(layer_count=2, media_type=child_type) for _ in range(platforms)]
    for child in children:
        push_image(client, name, child.digest, child)
    manifest = make_index(children, media_type=media_type)
    response = client.put(f"/v2/{name}/manifests/{tag}", content=manifest,
                          headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text
    return PushedIndex(manifest, media_type, children)


@contextmanager
def run_upstream(tmp: Path, auth: AuthKind = "none") -> Iterator[UpstreamRegistry]:
    """Run distribution 2.8.2 as an upstream registry until the block ends: with no
    authentication, with an htpasswd file (bcrypt) of the users of tests/support/tokens.py,
    or trusting the tokens of a dockyard issuer run beside it (RULES: alice may do anything,
    anonymous users pull public/*)."""
    require_tool("docker-registry")
    tmp.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        config: dict[str, Any] = {}
        issuer = None
        if auth == "htpasswd":
            users = write_users(tmp / "htpasswd")
            config = {"auth": {"htpasswd": {"realm": "upstream", "path": str(users)}}}
        elif auth == "token":
            (tmp / "issuer").mkdir(parents=True, exist_ok=True)
            issuer = stack.enter_context(run_issuer(tmp / "issuer", {
                "rules": RULES, "groups": {"ci": ["bob"]}}))
            config = {"auth": issuer.token_config()}
        registry = stack.enter_context(run_registry(tmp / "upstream", kind="distribution",
                                                    config=config))
        if auth == "none":
            yield UpstreamRegistry(auth, registry, None, None)
        else:
            yield UpstreamRegistry(auth, registry, USERNAME, PASSWORD, issuer)


@contextmanager
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
