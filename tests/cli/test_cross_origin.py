"""The remote commands never carry credentials to another origin (scheme, host, port).

A hostile registry, a small stdlib HTTP server on loopback, answers with pagination links
and redirects that point at a second server, which records every Authorization header it
receives. The commands run as subprocesses with credentials in the environment.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.oci import OCI_MANIFEST, digest_of, make_image

USER, PASSWORD = "alice", "s3cret-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CREDENTIALS = {"DOCKYARD_USERNAME": USER, "DOCKYARD_PASSWORD": PASSWORD}


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


class FakeServer:
    """A thread serving `route(method, path)`; records what each request carried."""

    def __init__(self, host: str, route: Callable[[str, str], Answer],
                 require_basic: bool = False) -> None:
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self) -> None:
                authorization = self.headers.get("Authorization")
                server.seen.append(Seen(self.command, self.path, authorization))
                if require_basic and authorization != BASIC:
                    reply = Answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}',
                                   {"WWW-Authenticate": 'Basic realm="hostile"'})
                else:
                    reply = route(self.command, self.path)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_DELETE = answer

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.host = self.url.removeprefix("http://")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorizations(self) -> list[str]:
        return [seen.authorization for seen in self.seen if seen.authorization]


def json_answer(document: object, **headers: str) -> Answer:
    return Answer(200, json.dumps(document).encode(),
                  {"Content-Type": "application/json", **headers})


@pytest.fixture(params=["127.0.0.1", "127.0.0.2"], ids=["other-port", "other-host"])
def elsewhere(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    """The server credentials must never reach: same loopback host on another port, or
    another loopback address."""
    image = make_image(layer_count=1, layer_size=16)

    def route(method: str, path: str) -> Answer:
        if path.startswith("/v2/_catalog"):
            return json_answer({"repositories": ["stolen"]})
        if "/tags/list" in path:
            return json_answer({"name": "app", "tags": ["stolen"]})
        if "/blobs/" in path:
            return Answer(200, image.config, {"Content-Type": "application/octet-stream"})
        return Answer(404)

    with FakeServer(request.param, route) as server:
        yield server


def hostile_registry(route: Callable[[str, str], Answer]) -> FakeServer:
    return FakeServer("127.0.0.1", route, require_basic=True)


@pytest.mark.parametrize("scheme", ["http:", ""], ids=["absolute", "scheme-relative"])
def test_a_catalog_link_to_another_origin_is_refused(cli: Any, elsewhere: FakeServer,
                                                    scheme: str) -> None:
    target = scheme + elsewhere.url.removeprefix("http:")

    def route(method: str, path: str) -> Answer:
        return json_answer({"repositories": ["first"]},
                           Link=f'<{target}/v2/_catalog?last=first&n=100>; rel="next"')

    with hostile_registry(route) as registry:
        result = cli("ls", "--insecure", registry.host, env=CREDENTIALS)
    assert result.code == 1, (result.out, result.err)
    assert "another origin" in result.err and elsewhere.url in result.err, result.err
    assert "stolen" not in result.out
    assert registry.authorizations(), "the registry itself gets the credentials"
    assert elsewhere.seen == []


def test_a_tags_link_to_another_origin_is_refused(cli: Any, elsewhere: FakeServer) -> None:
    def route(method: str, path: str) -> Answer:
        return json_answer({"name": "app", "tags": ["v1"]},
                           Link=f'<{elsewhere.url}/v2/app/tags/list?last=v1>; rel="next"')

    with hostile_registry(route) as registry:
        result = cli("tags", "--insecure", f"{registry.host}/app", env=CREDENTIALS)
    assert result.code == 1, (result.out, result.err)
    assert "another origin" in result.err, result.err
    assert elsewhere.seen == []


def test_a_redirect_of_an_api_call_to_another_origin_is_refused(
        cli: Any, elsewhere: FakeServer) -> None:
    def route(method: str, path: str) -> Answer:
        return Answer(307, headers={"Location": f"{elsewhere.url}{path}"})

    with hostile_registry(route) as registry:
        result = cli("tags", "--insecure", f"{registry.host}/app", env=CREDENTIALS)
    assert result.code == 1, (result.out, result.err)
    assert "another origin" in result.err and elsewhere.url in result.err, result.err
    assert elsewhere.authorizations() == []
    assert "stolen" not in result.out


def test_a_blob_redirect_to_another_origin_is_followed_without_credentials(
        cli: Any, elsewhere: FakeServer) -> None:
    """Registries may send blob downloads to a CDN or object store (the spec allows it):
    followed, but the credentials stay with the registry."""
    image = make_image(layer_count=1, layer_size=16)
    digest = digest_of(image.manifest)

    def route(method: str, path: str) -> Answer:
        if "/manifests/" in path:
            return Answer(200, image.manifest, {"Content-Type": OCI_MANIFEST,
                                                "Docker-Content-Digest": digest})
        if "/blobs/" in path:
            return Answer(307, headers={"Location": f"{elsewhere.url}/cdn{path}"})
        return Answer(404)

    with hostile_registry(route) as registry:
        result = cli("inspect", "--insecure", "--json", f"{registry.host}/app:v1",
                     env=CREDENTIALS)
    assert result.code == 0, result.err
    assert result.json()["digest"] == digest
    assert any("/cdn/v2/app/blobs/" in seen.path for seen in elsewhere.seen), elsewhere.seen
    assert elsewhere.authorizations() == []
    assert registry.authorizations()


def test_same_origin_links_and_redirects_keep_the_credentials(cli: Any) -> None:
    def route(method: str, path: str) -> Answer:
        if path.startswith("/v2/_catalog?last=first"):
            return Answer(307, headers={"Location": "/v2/moved-catalog"})
        if path.startswith("/v2/moved-catalog"):
            return json_answer({"repositories": ["second"]})
        return json_answer({"repositories": ["first"]},
                           Link='</v2/_catalog?last=first&n=100>; rel="next"')

    with hostile_registry(route) as registry:
        result = cli("ls", "--insecure", "--json", registry.host, env=CREDENTIALS)
        assert result.code == 0, result.err
        assert result.json()["repositories"] == ["first", "second"]
        followed = [seen for seen in registry.seen
                    if seen.path.startswith(("/v2/_catalog?last=", "/v2/moved-catalog"))]
        assert len(followed) == 2
        assert all(seen.authorization == BASIC for seen in followed), followed
