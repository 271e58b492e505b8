"""The pull-through cache's client of its upstream (dockyard.proxy.upstream), against
distribution 2.8.2 run plain, behind htpasswd and behind token auth (dockyard's issuer), and
against small local HTTP servers where a behaviour needs a server distribution cannot be
made to be: one that redirects, fails, cuts a body short or never answers."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dockyard.proxy.upstream import (
    MAX_MANIFEST_BYTES,
    Upstream,
    UpstreamDenied,
    UpstreamError,
    UpstreamManifest,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from dockyard.proxy.upstream_auth import Challenge, parse_challenges
from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    digest_of,
    random_blob,
)
from tests.support.server import free_port
from tests.support.upstreams import (
    AUTH_KINDS,
    AuthKind,
    PushedIndex,
    UpstreamRegistry,
    run_upstream,
    silent_server,
)

pytestmark = pytest.mark.clients

NAME = "team/app"
MISSING_DIGEST = digest_of(b"nothing has this digest")


@dataclass
class Content:
    upstream: UpstreamRegistry
    image: Image  # NAME:v1
    index: PushedIndex  # NAME:multi
    docker_image: Image  # NAME:docker
    docker_list: PushedIndex  # NAME:docker-list

    def client(self, **kwargs: Any) -> Upstream:
        return Upstream(self.upstream.url, self.upstream.username, self.upstream.password,
                        **kwargs)


@pytest.fixture(scope="module", params=AUTH_KINDS)
def content(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Content]:
    auth: AuthKind = request.param
    with run_upstream(tmp_path_factory.mktemp(f"upstream-{auth}"), auth) as upstream:
        yield Content(upstream,
                      upstream.push_image(NAME, "v1"),
                      upstream.push_index(NAME, "multi"),
                      upstream.push_image(NAME, "docker", media_type=DOCKER_MANIFEST),
                      upstream.push_index(NAME, "docker-list", media_type=DOCKER_LIST))


def manifest_of(image: Image | PushedIndex, data: bool = True) -> UpstreamManifest:
    return UpstreamManifest(image.digest, image.media_type, len(image.manifest),
                            image.manifest if data else None)


# -- distribution, plain, htpasswd and token --------------------------------------------


def test_manifests_by_tag_and_by_digest(content: Content) -> None:
    """Each manifest type comes back as pushed: the Accept header names them all."""
    pushed: dict[str, Image | PushedIndex] = {
        "v1": content.image, "multi": content.index, "docker": content.docker_image,
        "docker-list": content.docker_list}

    async def check() -> None:
        async with content.client() as upstream:
            for tag, image in pushed.items():
                for reference in (tag, image.digest):
                    assert await upstream.head_manifest(NAME, reference) == \
                        manifest_of(image, data=False), reference
                    assert await upstream.get_manifest(NAME, reference) == \
                        manifest_of(image), reference
            for child in content.index.children:
                assert await upstream.get_manifest(NAME, child.digest) == manifest_of(child)

    asyncio.run(check())
    assert content.index.media_type == OCI_INDEX and content.image.media_type == OCI_MANIFEST


def test_blobs(content: Content) -> None:
    image = content.image

    async def check() -> None:
        async with content.client() as upstream:
            for blob in (image.config, *image.layers):
                assert await upstream.head_blob(NAME, digest_of(blob)) == len(blob)
                async with upstream.open_blob(NAME, digest_of(blob)) as opened:
                    assert opened.size == len(blob)
                    assert b"".join([chunk async for chunk in opened.chunks]) == blob

    asyncio.run(check())


def test_missing_tags_blobs_and_repositories_are_not_found(content: Content) -> None:
    async def check() -> None:
        async with content.client() as upstream:
            attempts = {
                "tag": upstream.get_manifest(NAME, "no-such-tag"),
                "head tag": upstream.head_manifest(NAME, "no-such-tag"),
                "digest": upstream.get_manifest(NAME, MISSING_DIGEST),
                "blob": upstream.head_blob(NAME, MISSING_DIGEST),
                "repository": upstream.get_manifest("team/no-such-repository", "v1"),
            }
            for what, attempt in attempts.items():
                with pytest.raises(UpstreamNotFound) as caught:
                    await attempt
                assert caught.value.status == 404, what
                assert content.upstream.url in str(caught.value), what
            with pytest.raises(UpstreamNotFound, match="BLOB_UNKNOWN"):
                async with upstream.open_blob(NAME, MISSING_DIGEST):
                    pass
            with pytest.raises(UpstreamNotFound, match="MANIFEST_UNKNOWN"):
                await upstream.get_manifest(NAME, "no-such-tag")

    asyncio.run(check())


@pytest.mark.parametrize("content", ["htpasswd", "token"], indirect=True)
def test_wrong_or_no_credentials_are_denied(content: Content) -> None:
    url = content.upstream.url

    async def check() -> None:
        for username, password in (("alice", "not her password"), ("mallory", "wonderland"),
                                   (None, None)):
            async with Upstream(url, username, password) as upstream:
                with pytest.raises(UpstreamDenied) as caught:
                    await upstream.head_manifest(NAME, "v1")
                assert caught.value.status == 401
                assert url in str(caught.value)
                with pytest.raises(UpstreamDenied):
                    async with upstream.open_blob(NAME, digest_of(content.image.layers[0])):
                        pass

    asyncio.run(check())


def token_requests(content: Content) -> int:
    """The token requests dockyard's issuer has logged from Upstream clients."""
    assert content.upstream.issuer is not None
    return sum(1 for line in content.upstream.issuer.registry.logs().splitlines()
               if 'msg="GET /auth/token' in line and "pull-through cache" in line)


@pytest.mark.parametrize("content", ["token"], indirect=True)
def test_one_token_for_concurrent_requests_of_a_repository(content: Content) -> None:
    image = content.image
    before = token_requests(content)

    async def pull() -> None:
        async with content.client() as upstream:
            results = await asyncio.gather(
                *(upstream.get_manifest(NAME, "v1") for _ in range(6)),
                *(upstream.head_blob(NAME, digest_of(layer)) for layer in image.layers))
            assert results[0] == manifest_of(image)
            # A later request reuses the token too.
            assert await upstream.head_manifest(NAME, image.digest) == manifest_of(image, False)

    asyncio.run(pull())
    deadline = time.monotonic() + 10
    while token_requests(content) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a second request, had there been one, would be logged by now
    assert token_requests(content) == before + 1


# -- unreachable and silent upstreams -----------------------------------------------------


def test_closed_port_is_unavailable() -> None:
    async def check() -> None:
        async with Upstream(f"http://127.0.0.1:{free_port()}", connect_timeout=2) as upstream:
            with pytest.raises(UpstreamUnavailable) as caught:
                await upstream.head_manifest(NAME, "v1")
            assert caught.value.status is None
            assert upstream.url in str(caught.value)

    asyncio.run(check())


def test_server_that_never_answers_is_unavailable() -> None:
    async def check(url: str) -> None:
        async with Upstream(url, timeout=0.5) as upstream:
            started = time.monotonic()
            with pytest.raises(UpstreamUnavailable, match="timed out"):
                await upstream.get_manifest(NAME, "v1")
            assert time.monotonic() - started < 5

    with silent_server() as url:
        asyncio.run(check(url))


# -- small local servers ------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Script = Callable[[Seen], Answer]


@dataclass
class LocalServer:
    url: str
    seen: list[Seen]


@contextmanager
def local_server(script: Script) -> Iterator[LocalServer]:
    """An HTTP server on a loopback port answering each request as `script` says. A
    Content-Length in the answer's headers is sent as it is, so a body can fall short; an
    empty one is left out, so the body ends where the connection does."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            request = Seen(self.command, self.path,
                           {name.lower(): value for name, value in self.headers.items()})
            seen.append(request)
            answer = script(request)
            self.send_response(answer.status)
            headers = {"Content-Length": str(len(answer.body)), **answer.headers}
            for name, value in headers.items():
                if value:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                with suppress(ConnectionError):  # a client that has read enough
                    self.wfile.write(answer.body)

        do_GET = do_HEAD = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


BLOB = random_blob(50_000)
BLOB_DIGEST = digest_of(BLOB)
BLOB_PATH = f"/v2/{NAME}/blobs/{BLOB_DIGEST}"


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_redirected_blob_gets_no_credentials(scheme: str) -> None:
    """The upstream redirects blob requests to a storage server of another origin, which
    must get neither the Basic credentials nor the upstream's token."""
    token = "upstream-token"

    def storage(request: Seen) -> Answer:
        return Answer(200, {"Content-Type": "application/octet-stream"}, BLOB)

    with local_server(storage) as store:
        def upstream(request: Seen) -> Answer:
            if request.path.startswith("/token"):
                return Answer(200, {"Content-Type": "application/json"},
                              json.dumps({"token": token}).encode())
            wanted = basic("alice", "secret") if scheme == "basic" else f"Bearer {token}"
            if request.headers.get("authorization") != wanted:
                challenge = ('Basic realm="upstream"' if scheme == "basic" else
                             f'Bearer realm="{front.url}/token",service="upstream"')
                return Answer(401, {"WWW-Authenticate": challenge})
            return Answer(307, {"Location": f"{store.url}/bucket/blob?signature=s3cr3t"})

        with local_server(upstream) as front:
            async def check() -> None:
                async with Upstream(front.url, "alice", "secret") as client:
                    assert await client.head_blob(NAME, BLOB_DIGEST) == len(BLOB)
                    async with client.open_blob(NAME, BLOB_DIGEST) as opened:
                        assert opened.size == len(BLOB)
                        assert b"".join([chunk async for chunk in opened.chunks]) == BLOB

            asyncio.run(check())

    assert [(seen.method, seen.path) for seen in store.seen] == \
        [("HEAD", "/bucket/blob?signature=s3cr3t"), ("GET", "/bucket/blob?signature=s3cr3t")]
    assert all("authorization" not in seen.headers for seen in store.seen)
    answered = [seen for seen in front.seen if seen.path == BLOB_PATH
                and "authorization" in seen.headers]
    assert [seen.method for seen in answered] == ["HEAD", "GET"]
    tokens = [seen for seen in front.seen if seen.path.startswith("/token")]
    if scheme == "bearer":
        # The realm named by the challenge gets the credentials, once.
        assert [seen.headers["authorization"] for seen in tokens] == [basic("alice", "secret")]
        assert "scope=repository%3Ateam%2Fapp%3Apull" in tokens[0].path
        assert "service=upstream" in tokens[0].path
    else:
        assert tokens == []


class TokenServer:
    """An upstream whose tokens all stop working when `revoke` is called, as when a token
    server's key rotates (and, with `honour_new` off, that refuses even new ones); counts the
    tokens it issues."""

    def __init__(self, lifetime: int = 300) -> None:
        self.issued = 0
        self.valid: set[str] = set()
        self.honour_new = True
        self.lifetime = lifetime
        self.url = ""

    def revoke(self) -> None:
        self.valid.clear()

    def __call__(self, request: Seen) -> Answer:
        if request.path.startswith("/token"):
            self.issued += 1
            token = f"token-{self.issued}"
            if self.honour_new:
                self.valid.add(token)
            return Answer(200, {"Content-Type": "application/json"}, json.dumps(
                {"access_token": token, "expires_in": self.lifetime}).encode())
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return Answer(401, {"WWW-Authenticate": f'Bearer realm="{self.url}/token",'
                                'service="upstream",scope="repository:team/app:pull"'})
        return Answer(200, {"Content-Length": str(len(BLOB))})


def test_a_refused_cached_token_is_fetched_again_once() -> None:
    tokens = TokenServer()
    with local_server(tokens) as server:
        tokens.url = server.url

        async def check() -> None:
            async with Upstream(server.url) as client:
                assert await client.head_blob(NAME, BLOB_DIGEST) == len(BLOB)
                assert await client.head_blob(NAME, BLOB_DIGEST) == len(BLOB)
                assert tokens.issued == 1
                tokens.revoke()
                assert await client.head_blob(NAME, BLOB_DIGEST) == len(BLOB)
                assert tokens.issued == 2
                # Tokens refused as soon as issued: denied after one fresh fetch.
                tokens.honour_new = False
                tokens.revoke()
                with pytest.raises(UpstreamDenied, match="just issued"):
                    await client.head_blob(NAME, BLOB_DIGEST)
                assert tokens.issued == 3

        asyncio.run(check())
    # The cached token went with every request after the first challenge.
    challenged = [seen for seen in server.seen if "authorization" not in seen.headers
                  and not seen.path.startswith("/token")]
    assert len(challenged) == 1


def test_tokens_expire() -> None:
    tokens = TokenServer(lifetime=2)  # kept for 1 s (half, under the 10 s margin)
    with local_server(tokens) as server:
        tokens.url = server.url

        async def check() -> None:
            async with Upstream(server.url) as client:
                await client.head_blob(NAME, BLOB_DIGEST)
                await client.head_blob(NAME, BLOB_DIGEST)
                assert tokens.issued == 1
                await asyncio.sleep(1.2)
                await client.head_blob(NAME, BLOB_DIGEST)
                assert tokens.issued == 2

        asyncio.run(check())


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_overloaded_or_failing_upstream_is_unavailable(status: int) -> None:
    with local_server(lambda request: Answer(status, {"Content-Type": "application/json"},
                                             b'{"errors": [{"code": "UNAVAILABLE"}]}')) as server:
        async def check() -> None:
            async with Upstream(server.url) as client:
                with pytest.raises(UpstreamUnavailable) as caught:
                    await client.get_manifest(NAME, "v1")
                assert caught.value.status == status
                assert server.url in str(caught.value)

        asyncio.run(check())


def test_blob_cut_short_is_unavailable_from_the_iterator() -> None:
    def cut(request: Seen) -> Answer:
        return Answer(200, {"Content-Length": str(len(BLOB))}, BLOB[:10_000])

    with local_server(cut) as server:
        async def check() -> None:
            async with Upstream(server.url) as client, \
                    client.open_blob(NAME, BLOB_DIGEST) as opened:
                assert opened.size == len(BLOB)
                received = bytearray()
                with pytest.raises(UpstreamUnavailable, match=BLOB_DIGEST):
                    async for chunk in opened.chunks:
                        received += chunk
                assert bytes(received) == BLOB[:10_000]

        asyncio.run(check())


def manifest_server(body: bytes, headers: dict[str, str] | None = None) -> Script:
    def answer(request: Seen) -> Answer:
        return Answer(200, {"Content-Type": OCI_MANIFEST, **(headers or {})}, body)
    return answer


def test_manifest_checks() -> None:
    body = b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_MANIFEST.encode()
    other = digest_of(b"another manifest")

    async def get(script: Script, reference: str) -> UpstreamManifest:
        with local_server(script) as server:
            async with Upstream(server.url) as client:
                return await client.get_manifest(NAME, reference)

    async def check() -> None:
        # No Docker-Content-Digest: the body's digest; Content-Type parameters dropped.
        assert await get(manifest_server(body, {"Content-Type": f"{OCI_MANIFEST}; x=y"}),
                         "v1") == UpstreamManifest(digest_of(body), OCI_MANIFEST, len(body),
                                                   body)
        # A generic Content-Type: the manifest's own mediaType.
        generic = await get(manifest_server(body, {"Content-Type": "application/json"}), "v1")
        assert generic.media_type == OCI_MANIFEST
        # By digest, the body must have it.
        with pytest.raises(UpstreamError, match="digest") as caught:
            await get(manifest_server(body), other)
        assert not isinstance(caught.value, UpstreamUnavailable | UpstreamNotFound)
        # By tag, the digest the upstream names must be the body's.
        with pytest.raises(UpstreamError, match="Docker-Content-Digest"):
            await get(manifest_server(body, {"Docker-Content-Digest": other}), "v1")
        # Too large, announced or not.
        large = b" " * (MAX_MANIFEST_BYTES + 1)
        with pytest.raises(UpstreamError, match="too large"):
            await get(manifest_server(large), "v1")

        def chunked(request: Seen) -> Answer:
            return Answer(200, {"Content-Type": OCI_MANIFEST, "Content-Length": ""}, large)
        with pytest.raises(UpstreamError, match="too large"):
            await get(chunked, "v1")

    asyncio.run(check())


# -- without a server ---------------------------------------------------------------------


def test_docker_hub_names_and_endpoint() -> None:
    hub = Upstream("https://docker.io/")
    assert hub.url == "https://docker.io"
    assert hub.endpoint == "https://registry-1.docker.io"
    for url in ("https://registry-1.docker.io", "https://index.docker.io"):
        assert Upstream(url).remote_name("alpine") == "library/alpine"
    assert hub.remote_name("alpine") == "library/alpine"
    assert hub.remote_name("library/alpine") == "library/alpine"
    assert hub.remote_name("someone/app") == "someone/app"
    other = Upstream("https://registry.example.com:5000")
    assert other.endpoint == other.url
    assert other.remote_name("alpine") == "alpine"


def test_challenges_are_parsed() -> None:
    header = ('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
              'scope="repository:team/app:pull,push", Basic realm="say \\"hi\\"", '
              'Custom token=unquoted,other = spaced')
    assert parse_challenges(header) == [
        Challenge("bearer", {"realm": "https://auth.example.com/token",
                             "service": "registry.example.com",
                             "scope": "repository:team/app:pull,push"}),
        Challenge("basic", {"realm": 'say "hi"'}),
        Challenge("custom", {"token": "unquoted", "other": "spaced"}),
    ]
    assert parse_challenges("") == []
    assert parse_challenges('realm="orphan", BASIC') == [Challenge("basic")]
