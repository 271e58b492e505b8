"""dockyard as a pull-through cache of distribution 2.8.2: distribution's `proxy` keys,
what is fetched and when, what is refused, and what is served while the upstream is down."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.clients import Skopeo
from tests.support.oci import (
    OCI_MANIFEST,
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_image,
    random_blob,
)
from tests.support.server import (
    RunningRegistry,
    deep_merge,
    free_port,
    require_tool,
    run_registry,
)
from tests.support.upstreams import run_upstream, silent_server

pytestmark = pytest.mark.clients

MIB = 1024 * 1024


def proxy_of(upstream_url: str, **extra: Any) -> dict[str, Any]:
    return {"proxy": {"remoteurl": upstream_url, **extra}}


@contextmanager
def upstream_and_cache(tmp_path: Path, cache_config: dict[str, Any] | None = None,
                       upstream_port: int | None = None
                       ) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    with run_registry(tmp_path / "upstream", kind="distribution", port=upstream_port) as upstream:
        config = deep_merge(proxy_of(upstream.url), cache_config or {})
        with run_registry(tmp_path / "cache", config=config) as cache:
            yield upstream, cache


def upstream_requests(upstream: RunningRegistry, method: str, path_part: str) -> int:
    """How many `method` requests for a path containing `path_part` the upstream logged."""
    # distribution quotes a value only when it has characters that need it (a digest's ":").
    pattern = re.compile(rf'http\.request\.method={method} .*http\.request\.uri="?[^" ]*'
                         rf'{re.escape(path_part)}')
    return sum(1 for line in upstream.logs().splitlines()
               if "response completed" in line and pattern.search(line))


def stored_blob(cache: RunningRegistry, digest: str) -> Path:
    """The blob's data file in the cache's store, once the fetch that streamed it to a
    client has also committed it (a moment after the last byte went out)."""
    path = cache.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{digest} was not stored"
    return path


def test_a_pull_is_fetched_once_and_then_served_from_the_cache(tmp_path: Path) -> None:
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    with upstream_and_cache(tmp_path) as (upstream, cache):
        image = make_image(layer_count=3)
        with upstream.client() as client:
            push_image(client, "library/app", "v1", image)
        first = tmp_path / "first"
        skopeo.copy(f"docker://{cache.host}/library/app:v1", f"dir:{first}")
        assert (first / "manifest.json").read_bytes() == image.manifest
        for layer in image.layers:
            assert (first / digest_of(layer).split(":")[1]).read_bytes() == layer
        # Stored in distribution's layout, so the cache's store is an ordinary one.
        store = cache.root / "docker" / "registry" / "v2"
        assert (store / "repositories/library/app/_manifests/tags/v1/current/link"
                ).read_text() == image.digest
        fetched = upstream_requests(upstream, "GET", digest_of(image.layers[0]))
        assert fetched == 1
        skopeo.copy(f"docker://{cache.host}/library/app:v1", f"dir:{tmp_path / 'second'}")
        assert upstream_requests(upstream, "GET", digest_of(image.layers[0])) == 1
        with upstream.client() as client:
            push_image(client, "library/app", "v2", make_image())
        with cache.client() as client:
            assert client.get("/v2/_catalog").json()["repositories"] == ["library/app"]
            # Tags are the upstream's (as distribution lists them), pulled or not.
            assert client.get("/v2/library/app/tags/list").json()["tags"] == ["v1", "v2"]
            page = client.get("/v2/library/app/tags/list", params={"n": 1})
            assert page.json()["tags"] == ["v1"] and 'rel="next"' in page.headers["Link"]


def test_pushes_and_deletes_are_refused_as_distribution_refuses_them(tmp_path: Path) -> None:
    with upstream_and_cache(tmp_path) as (upstream, cache), cache.client() as client:
        with upstream.client() as pusher:
            image = make_image()
            push_image(pusher, "team/app", "v1", image)
        assert client.get("/v2/team/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        attempts = [
            client.post("/v2/team/app/blobs/uploads/"),
            client.put("/v2/team/app/manifests/v2", content=image.manifest,
                       headers={"Content-Type": OCI_MANIFEST}),
            client.delete(f"/v2/team/app/manifests/{image.digest}"),
            client.delete(f"/v2/team/app/blobs/{digest_of(image.config)}"),
        ]
        for response in attempts:
            assert response.status_code == 405, response.text
            assert error_codes(response) == ["UNSUPPORTED"]
            assert "pull-through cache" in response.json()["errors"][0]["message"]
        assert client.get("/v2/team/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_a_moved_tag_is_seen_and_digests_are_served_without_asking(tmp_path: Path) -> None:
    with upstream_and_cache(tmp_path) as (upstream, cache), cache.client() as client, \
            upstream.client() as pusher:
        old, new = make_image(), make_image()
        push_image(pusher, "team/app", "latest", old)
        got = client.get("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert got.headers["Docker-Content-Digest"] == old.digest
        push_image(pusher, "team/app", "latest", new)
        got = client.get("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.headers["Docker-Content-Digest"] == new.digest
        assert got.content == new.manifest
        asked = upstream_requests(upstream, "GET", f"/manifests/{old.digest}")
        heads = upstream_requests(upstream, "HEAD", "/manifests/")
        by_digest = client.get(f"/v2/team/app/manifests/{old.digest}",
                               headers={"Accept": OCI_MANIFEST})
        assert by_digest.content == old.manifest
        assert upstream_requests(upstream, "GET", f"/manifests/{old.digest}") == asked
        assert upstream_requests(upstream, "HEAD", "/manifests/") == heads


def test_cached_content_is_served_while_the_upstream_is_down(tmp_path: Path) -> None:
    """Stale-if-error: tags and blobs pulled before are served with the upstream stopped;
    what was never pulled fails at once with 503 UNAVAILABLE, not a hang."""
    port = free_port()
    image, other = make_image(), make_image()
    with run_registry(tmp_path / "cache", config=proxy_of(f"http://127.0.0.1:{port}")
                      ) as cache, cache.client() as client:
        with run_registry(tmp_path / "upstream", kind="distribution", port=port) as upstream, \
                upstream.client() as pusher:
            push_image(pusher, "team/app", "v1", image)
            push_image(pusher, "team/other", "v1", other)
            assert client.get("/v2/team/app/manifests/v1",
                              headers={"Accept": OCI_MANIFEST}).status_code == 200
            for content in (image.config, *image.layers):
                assert client.get(f"/v2/team/app/blobs/{digest_of(content)}").content \
                    == content
        got = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == image.manifest
        assert client.get(f"/v2/team/app/blobs/{digest_of(image.layers[0])}").content \
            == image.layers[0]
        started = time.monotonic()
        missing = client.get("/v2/team/other/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert missing.status_code == 503, missing.text
        assert error_codes(missing) == ["UNAVAILABLE"]
        assert "upstream" in missing.json()["errors"][0]["message"]
        blob = client.get(f"/v2/team/other/blobs/{digest_of(other.layers[0])}")
        assert blob.status_code == 503
        assert time.monotonic() - started < 10
        assert "serving team/app:v1 from the cache" in cache.logs()
        # The tags the cache has, while the upstream cannot list its own.
        assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]


def test_an_upstream_that_never_answers_gives_503_after_the_timeout(tmp_path: Path) -> None:
    with silent_server() as url:
        config = proxy_of(url, timeout="2s")
        with run_registry(tmp_path / "cache", config=config) as cache, \
                cache.client(timeout=30) as client:
            started = time.monotonic()
            response = client.get("/v2/team/app/manifests/v1")
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert 1.5 < took < 10


def test_unknown_content_upstream_is_unknown_here(tmp_path: Path) -> None:
    with upstream_and_cache(tmp_path) as (_, cache), cache.client() as client:
        response = client.get("/v2/team/none/manifests/v1")
        assert response.status_code == 404 and error_codes(response) == ["MANIFEST_UNKNOWN"]
        response = client.get(f"/v2/team/none/blobs/{digest_of(b'nothing')}")
        assert response.status_code == 404 and error_codes(response) == ["BLOB_UNKNOWN"]
        response = client.head(f"/v2/team/none/blobs/{digest_of(b'nothing')}")
        assert response.status_code == 404


def test_a_blob_head_asks_the_upstream_without_fetching(tmp_path: Path) -> None:
    with upstream_and_cache(tmp_path) as (upstream, cache), cache.client() as client, \
            upstream.client() as pusher:
        layer = random_blob(64 * 1024)
        digest = push_blob(pusher, "team/app", layer)
        head = client.head(f"/v2/team/app/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(layer))
        assert upstream_requests(upstream, "GET", digest) == 0
        ranged = client.get(f"/v2/team/app/blobs/{digest}", headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == layer[100:200]
        assert client.get(f"/v2/team/app/blobs/{digest}").content == layer


@pytest.mark.parametrize("workers", [1, 3])
def test_concurrent_pulls_of_an_uncached_blob_fetch_it_once(tmp_path: Path,
                                                             workers: int) -> None:
    """Twenty clients ask for the same uncached 32 MiB blob at once, whichever worker
    process each reaches: the upstream sees one GET, every client gets the same bytes, and
    the blob is stored once."""
    config = {"http": {"workers": workers}}
    with upstream_and_cache(tmp_path, config) as (upstream, cache), \
            upstream.client() as pusher:
        layer = random_blob(32 * MIB)
        digest = push_blob(pusher, "team/big", layer)
        results: list[str] = []
        errors: list[BaseException] = []

        def pull() -> None:
            try:
                with httpx.Client(base_url=cache.url, timeout=120) as client:
                    response = client.get(f"/v2/team/big/blobs/{digest}")
                    assert response.status_code == 200, response.text
                    results.append("sha256:" + hashlib.sha256(response.content).hexdigest())
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=pull) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert results == [digest] * 20
        assert upstream_requests(upstream, "GET", digest) == 1
        assert stored_blob(cache, digest).read_bytes() == layer


def test_upstreams_under_prefixes_beside_local_repositories(tmp_path: Path) -> None:
    with run_registry(tmp_path / "one", kind="distribution") as one, \
            run_registry(tmp_path / "two", kind="distribution") as two:
        config = {"proxy": {"upstreams": [{"prefix": "hub", "remoteurl": one.url},
                                          {"prefix": "mirror/two", "remoteurl": two.url}]}}
        first, second, local = make_image(), make_image(), make_image()
        with one.client() as pusher:
            push_image(pusher, "library/alpine", "3", first)
        with two.client() as pusher:
            push_image(pusher, "org/tool", "1", second)
        with run_registry(tmp_path / "cache", config=config) as cache, \
                cache.client() as client:
            push_image(client, "team/app", "v1", local)
            for name, tag, image in (("hub/library/alpine", "3", first),
                                     ("mirror/two/org/tool", "1", second),
                                     ("team/app", "v1", local)):
                got = client.get(f"/v2/{name}/manifests/{tag}",
                                 headers={"Accept": OCI_MANIFEST})
                assert got.status_code == 200 and got.content == image.manifest, name
                layer = image.layers[0]
                assert client.get(f"/v2/{name}/blobs/{digest_of(layer)}").content == layer
            refused = client.post("/v2/hub/library/alpine/blobs/uploads/")
            assert refused.status_code == 405 and error_codes(refused) == ["UNSUPPORTED"]
            # A name under no prefix is an ordinary repository: unknown until pushed.
            assert client.get("/v2/library/alpine/manifests/3").status_code == 404
            catalog = client.get("/v2/_catalog").json()["repositories"]
            assert catalog == ["hub/library/alpine", "mirror/two/org/tool", "team/app"]


def test_the_proxy_section_comes_from_the_environment_too(tmp_path: Path) -> None:
    with run_registry(tmp_path / "upstream", kind="distribution") as upstream, \
            upstream.client() as pusher:
        image = make_image()
        push_image(pusher, "team/app", "v1", image)
        env = {"REGISTRY_PROXY_REMOTEURL": upstream.url}
        with run_registry(tmp_path / "cache", env=env) as cache, cache.client() as client:
            got = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200 and got.content == image.manifest
            assert json.loads(got.content)["layers"]


@pytest.mark.parametrize(("proxy", "key"), [
    ({"remoteurl": "ftp://example.com"}, "proxy.remoteurl"),
    ({"remoteurl": "http://127.0.0.1:1", "username": "u"}, "proxy.password"),
    ({"remoteurl": "http://127.0.0.1:1", "ttl": "soon"}, "proxy.ttl"),
    ({"upstreams": [{"prefix": "Hub", "remoteurl": "http://127.0.0.1:1"}]},
     "proxy.upstreams[0].prefix"),
    ({"upstreams": [{"prefix": "hub", "remoteurl": "http://127.0.0.1:1", "ttl2": 1}]},
     "proxy.upstreams[0].ttl2"),
    ({"upstreams": [{"prefix": "hub", "remoteurl": "http://127.0.0.1:1"},
                    {"prefix": "hub", "remoteurl": "http://127.0.0.1:2"}]}, "hub"),
])
def test_a_bad_proxy_section_stops_the_start(tmp_path: Path, proxy: dict[str, Any],
                                             key: str) -> None:
    import subprocess
    import sys

    import yaml

    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"filesystem": {
        "rootdirectory": str(tmp_path / "store")}}, "proxy": proxy}))
    result = subprocess.run([sys.executable, "-m", "dockyard", "serve", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr


def test_cached_content_expires_after_the_ttl_and_gc_removes_it(tmp_path: Path) -> None:
    """With proxy.ttl, what was fetched longer ago is forgotten, by a server started after
    the fetch too (the fetch times are the links' in the store), and garbage collection
    deletes the blobs; the next pull fetches again."""
    import subprocess
    import sys

    def collect(config: Path, *extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dockyard", "garbage-collect",
                               "--grace-period", "0", *extra, str(config)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    root = tmp_path / "cache-store"
    for directory in ("first", "second"):
        (tmp_path / directory).mkdir()
    with run_registry(tmp_path / "upstream", kind="distribution") as upstream, \
            upstream.client() as pusher:
        image = make_image()
        push_image(pusher, "team/app", "v1", image)
        layer = digest_of(image.layers[0])
        config = {**proxy_of(upstream.url, ttl="3s")}
        with run_registry(tmp_path / "first", root=root, config=config) as cache, \
                cache.client() as client:
            assert client.get("/v2/team/app/manifests/v1",
                              headers={"Accept": OCI_MANIFEST}).status_code == 200
            assert client.get(f"/v2/team/app/blobs/{layer}").status_code == 200
            data = stored_blob(cache, layer)
        time.sleep(3.5)
        report = collect(cache.config_path, "--dry-run")
        assert "would expire 1 cached manifests and 1 layer links" in report, report
        store = root / "docker/registry/v2"
        tag_link = store / "repositories/team/app/_manifests/tags/v1/current/link"
        assert tag_link.exists() and data.exists()
        with run_registry(tmp_path / "second", root=root, config=config) as cache, \
                cache.client() as client:
            deadline = time.monotonic() + 30
            while tag_link.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not tag_link.exists(), "the expired tag was not removed"
            assert not (store / "repositories/team/app/_layers/sha256" / layer[7:]).exists()
            collect(cache.config_path)
            assert not data.exists()
            again = client.get(f"/v2/team/app/blobs/{layer}")
            assert again.status_code == 200 and again.content == image.layers[0]
            assert upstream_requests(upstream, "GET", layer) == 2


class _Answer429(threading.Thread):
    """An upstream that answers every request 429 Too Many Requests (a rate limit)."""

    def __init__(self) -> None:
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                self.send_response(429)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _refuse

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(daemon=True)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_upstream_rate_limit_serves_the_cache_and_says_so_for_the_rest(
        tmp_path: Path) -> None:
    port = free_port()
    image = make_image()
    config = proxy_of(f"http://127.0.0.1:{port}")
    with run_registry(tmp_path / "cache", config=config) as cache, cache.client() as client:
        with run_registry(tmp_path / "upstream", kind="distribution", port=port) as upstream, \
                upstream.client() as pusher:
            push_image(pusher, "team/app", "v1", image)
            assert client.get("/v2/team/app/manifests/v1",
                              headers={"Accept": OCI_MANIFEST}).status_code == 200
        limited = _Answer429()
        limited.server.server_close()
        import http.server

        limited.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), limited.server.RequestHandlerClass)
        limited.start()
        try:
            got = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200 and got.content == image.manifest
            refused = client.get("/v2/team/other/manifests/v1")
            assert refused.status_code == 429, refused.text
            assert error_codes(refused) == ["TOOMANYREQUESTS"]
        finally:
            limited.stop()


def test_a_cache_killed_mid_fetch_keeps_no_partial_blob(tmp_path: Path) -> None:
    """kill -9 while a blob streams from the upstream: after a restart the store has no
    blob by that digest (only an abandoned upload, which purging removes), and a pull then
    fetches and serves it whole."""
    with run_registry(tmp_path / "upstream", kind="distribution") as upstream, \
            upstream.client() as pusher:
        layer = random_blob(64 * MIB)
        digest = push_blob(pusher, "team/big", layer)
        root = tmp_path / "cache-store"
        for directory in ("cache", "cache2"):
            (tmp_path / directory).mkdir()
        data = root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
        config = {**proxy_of(upstream.url), "http": {"workers": 1}}
        with run_registry(tmp_path / "cache", root=root, config=config) as cache, \
                httpx.Client(base_url=cache.url, timeout=60) as client, \
                client.stream("GET", f"/v2/team/big/blobs/{digest}") as response:
            assert response.status_code == 200
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received >= 4 * MIB:
                    break
            for process in (*_children(cache.process.pid), cache.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, signal.SIGKILL)
            cache.process.wait()
        assert not data.exists() or hashlib.sha256(data.read_bytes()).hexdigest() \
            == digest[7:]
        spools = root / "dockyard" / "fetches"
        assert list(spools.iterdir()), "the killed fetch left no spool to clean up"
        with run_registry(tmp_path / "cache2", root=root, config=config) as cache, \
                httpx.Client(base_url=cache.url, timeout=60) as client:
            assert not list(spools.iterdir()), "a dead fetch's spool was kept"
            again = client.get(f"/v2/team/big/blobs/{digest}")
            assert again.status_code == 200
            assert hashlib.sha256(again.content).hexdigest() == digest[7:]
            stored_blob(cache, digest)
            deadline = time.monotonic() + 10
            while list(spools.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not list(spools.iterdir()), "a finished fetch left its spool"


def _children(pid: int) -> list[int]:
    """The worker processes of a server (killed with it, as kill -9 of a host would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_the_cache_signs_in_to_the_upstream_as_docker_does(tmp_path: Path, auth: str) -> None:
    """With proxy.username/password the cache answers the upstream's challenge (Basic, or
    a token from its token server, here dockyard's own issuer); with wrong ones nothing
    is served."""
    with run_upstream(tmp_path / "upstream", auth) as upstream:  # type: ignore[arg-type]
        image = upstream.push_image("team/app", "v1")
        with run_registry(tmp_path / "cache", config=upstream.proxy_config()) as cache, \
                cache.client() as client:
            got = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200 and got.content == image.manifest
            layer = image.layers[0]
            assert client.get(f"/v2/team/app/blobs/{digest_of(layer)}").content == layer
        wrong = deep_merge(upstream.proxy_config(), {"proxy": {"password": "not-it"}})
        with run_registry(tmp_path / "wrong", config=wrong) as cache, \
                cache.client() as client:
            refused = client.get("/v2/team/app/manifests/v1")
            assert refused.status_code == 404, refused.text
            assert "refused" in refused.json()["errors"][0]["message"]


class ThrottledRelay(threading.Thread):
    """A TCP relay to `target` that sends the answers back at `rate` bytes a second (0:
    as fast as they come), so a fetch is still under way when a test wants it to be."""

    def __init__(self, target: tuple[str, int], rate: int) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.stalled = threading.Event()  # set: new connections are held, never answered
        self.held: list[socket.socket] = []

    def run(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stalled.is_set():
                self.held.append(client)
                continue
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.rate),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, rate: int | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.stalled.is_set() and not self.closed.is_set():
                    time.sleep(0.05)  # an open connection goes silent too
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for connection in self.held:
            connection.close()


def _holder_of(path: Path) -> int | None:
    """The process that has `path` open (the worker fetching into that spool)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == str(path):
                    return int(entry.name)
    return None


def test_followers_of_a_worker_killed_mid_fetch_fail_fast_and_the_next_pull_works(
        tmp_path: Path) -> None:
    """Clients on every worker follow one fetch; kill -9 the worker fetching: none of them
    hangs or gets wrong bytes (each either has the whole blob or a broken transfer), and
    the next pull fetches the blob anew and serves it whole."""
    with run_registry(tmp_path / "upstream", kind="distribution") as upstream, \
            upstream.client() as pusher:
        layer = random_blob(32 * MIB)
        digest = push_blob(pusher, "team/big", layer)
        relay = ThrottledRelay(("127.0.0.1", int(upstream.host.rsplit(":", 1)[1])), 4 * MIB)
        relay.start()
        config = {**proxy_of(f"http://127.0.0.1:{relay.port}"), "http": {"workers": 3}}
        try:
            with run_registry(tmp_path / "cache", config=config) as cache:
                outcomes: list[str] = []

                def pull() -> None:
                    try:
                        with httpx.Client(base_url=cache.url, timeout=30) as client:
                            response = client.get(f"/v2/team/big/blobs/{digest}")
                        body = hashlib.sha256(response.content).hexdigest()
                        outcomes.append("whole" if response.status_code == 200
                                        and body == digest[7:] else
                                        f"wrong {response.status_code}")
                    except httpx.HTTPError:
                        outcomes.append("broken")

                threads = [threading.Thread(target=pull) for _ in range(6)]
                for thread in threads:
                    thread.start()
                spools = cache.root / "dockyard" / "fetches"
                deadline = time.monotonic() + 20
                holder = None
                while holder is None and time.monotonic() < deadline:
                    found = [path for path in spools.glob("*") if "." not in path.name] \
                        if spools.exists() else []
                    if found and found[0].stat().st_size > 2 * MIB:
                        holder = _holder_of(found[0])
                    time.sleep(0.05)
                assert holder is not None, "no fetch under way"
                os.kill(holder, signal.SIGKILL)
                started = time.monotonic()
                for thread in threads:
                    thread.join(timeout=60)
                assert not any(thread.is_alive() for thread in threads), "a pull hangs"
                assert time.monotonic() - started < 30
                assert all(outcome in ("whole", "broken") for outcome in outcomes), outcomes
                assert "broken" in outcomes
                with httpx.Client(base_url=cache.url, timeout=60) as client:
                    again = client.get(f"/v2/team/big/blobs/{digest}")
                assert again.status_code == 200
                assert hashlib.sha256(again.content).hexdigest() == digest[7:]
        finally:
            relay.close()


def test_pulling_one_platform_fetches_that_platform_only(tmp_path: Path) -> None:
    """skopeo pulls the arm64 image of a two-platform index through the cache: the
    upstream is asked for the index, that platform's manifest, config and layers, and
    nothing of the other platform."""
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    with run_upstream(tmp_path / "upstream", "none") as upstream:
        index = upstream.push_index("team/multi", "v1", platforms=2)
        amd64, arm64 = index.children
        pushed = len(upstream.registry.logs())
        with run_registry(tmp_path / "cache", config=upstream.proxy_config()) as cache:
            skopeo.copy(f"docker://{cache.host}/team/multi:v1", f"dir:{tmp_path / 'arm'}",
                        "--override-arch", "arm64", "--override-os", "linux")
            assert (tmp_path / "arm" / "manifest.json").read_bytes() == arm64.manifest
            log = upstream.registry.logs()[pushed:]  # what the cache asked for
            for blob in (arm64.manifest, arm64.config, *arm64.layers):
                assert digest_of(blob) in log
            for blob in (amd64.manifest, amd64.config, *amd64.layers):
                assert digest_of(blob) not in log, "the other platform was fetched"


def test_a_tag_checked_within_tagfreshness_is_not_asked_again(tmp_path: Path) -> None:
    with upstream_and_cache(tmp_path, {"proxy": {"tagfreshness": "3s"}}) as (upstream, cache), \
            cache.client() as client, upstream.client() as pusher:
        old, new = make_image(), make_image()
        push_image(pusher, "team/app", "latest", old)
        for _ in range(5):
            got = client.get("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
            assert got.headers["Docker-Content-Digest"] == old.digest
        assert upstream_requests(upstream, "HEAD", "/manifests/latest") == 1
        push_image(pusher, "team/app", "latest", new)
        # Still the old digest inside the window; the new one after it.
        got = client.get("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert got.headers["Docker-Content-Digest"] == old.digest
        time.sleep(3.2)
        got = client.get("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert got.headers["Docker-Content-Digest"] == new.digest


def test_cached_content_is_served_when_the_upstream_stops_answering(tmp_path: Path) -> None:
    """An upstream that accepts connections and then says nothing (hung, or a network
    dropping packets): after proxy.timeout the cached tag is served."""
    with run_registry(tmp_path / "upstream", kind="distribution") as upstream, \
            upstream.client() as pusher:
        image = make_image()
        push_image(pusher, "team/app", "v1", image)
        relay = ThrottledRelay(("127.0.0.1", int(upstream.host.rsplit(":", 1)[1])), 0)
        relay.start()
        config = proxy_of(f"http://127.0.0.1:{relay.port}", timeout="2s")
        try:
            with run_registry(tmp_path / "cache", config=config) as cache, \
                    cache.client(timeout=30) as client:
                assert client.get("/v2/team/app/manifests/v1",
                                  headers={"Accept": OCI_MANIFEST}).status_code == 200
                relay.stalled.set()
                started = time.monotonic()
                got = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
                assert got.status_code == 200 and got.content == image.manifest
                assert 1.5 < time.monotonic() - started < 10
        finally:
            relay.close()


def test_cached_repositories_show_in_ls_and_du(tmp_path: Path) -> None:
    """The commands that show what a registry holds show a cache's repositories; `du`
    of the store counts what was fetched (a layer nobody pulled is not there)."""
    import subprocess
    import sys

    def dockyard(*args: str) -> tuple[Any, str]:
        done = subprocess.run([sys.executable, "-m", "dockyard", *args, "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), done.stderr

    with upstream_and_cache(tmp_path) as (upstream, cache), cache.client() as client, \
            upstream.client() as pusher:
        image = make_image(layer_count=3, layer_size=100_000)
        push_image(pusher, "team/app", "v1", image)
        assert client.get("/v2/team/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        layer = image.layers[0]
        assert client.get(f"/v2/team/app/blobs/{digest_of(layer)}").content == layer
        stored_blob(cache, digest_of(layer))
        listed, _ = dockyard("ls", "--insecure", cache.host)
        assert listed["repositories"] == ["team/app"]
        used, notes = dockyard("du", "--config", str(cache.config_path))
        [repository] = used["repositories"]
        assert repository["repository"] == "team/app"
        assert repository["size"] == len(layer) + len(image.manifest)
        assert f"team/app is a cache of {upstream.url}: 3 blobs" in notes
        assert "which the store does not have" not in notes


def test_dockyard_caches_dockyard(tmp_path: Path) -> None:
    """dockyard as the upstream too, behind its own htpasswd: skopeo pulls an image and a
    multi-platform index through the cache, and pulls them again with the upstream gone."""
    from tests.support.tokens import PASSWORDS, write_users
    from tests.support.upstreams import push_sample_image, push_sample_index

    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    users = write_users(tmp_path / "htpasswd")
    auth = {"auth": {"htpasswd": {"realm": "upstream", "path": str(users)}}}
    with run_registry(tmp_path / "upstream", config=auth) as upstream:
        with upstream.client(auth=("alice", PASSWORDS["alice"])) as pusher:
            image = push_sample_image(pusher, "team/app", "v1")
            index = push_sample_index(pusher, "team/multi", "v1")
        config = proxy_of(upstream.url, username="alice", password=PASSWORDS["alice"])
        with run_registry(tmp_path / "cache", config=config) as cache:
            skopeo.copy(f"docker://{cache.host}/team/app:v1", f"dir:{tmp_path / 'one'}")
            skopeo.copy(f"docker://{cache.host}/team/multi:v1", f"oci:{tmp_path / 'all'}",
                        "--all")
            upstream.process.terminate()
            upstream.process.wait(timeout=30)
            skopeo.copy(f"docker://{cache.host}/team/app:v1", f"dir:{tmp_path / 'two'}")
            skopeo.copy(f"docker://{cache.host}/team/multi:v1", f"oci:{tmp_path / 'again'}",
                        "--all")
            with cache.client() as client:
                for child in index.children:
                    got = client.get(f"/v2/team/multi/manifests/{child.digest}",
                                     headers={"Accept": child.media_type})
                    assert got.status_code == 200 and got.content == child.manifest
    assert (tmp_path / "two" / "manifest.json").read_bytes() == image.manifest
    for layer in image.layers:
        assert (tmp_path / "two" / digest_of(layer)[7:]).read_bytes() == layer


def test_concurrent_pulls_of_an_uncached_manifest_fetch_it_once(tmp_path: Path) -> None:
    """Twenty clients ask three workers for the same uncached tag at once: the upstream
    is asked for the manifest's body once (each worker checks the tag with a HEAD)."""
    with upstream_and_cache(tmp_path, {"http": {"workers": 3}}) as (upstream, cache), \
            upstream.client() as pusher:
        image = make_image()
        push_image(pusher, "team/app", "v1", image)
        answers: list[bytes] = []

        def pull() -> None:
            with httpx.Client(base_url=cache.url, timeout=60) as client:
                answers.append(client.get("/v2/team/app/manifests/v1",
                                          headers={"Accept": OCI_MANIFEST}).content)

        threads = [threading.Thread(target=pull) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [image.manifest] * 20
        assert upstream_requests(upstream, "GET", f"/manifests/{image.digest}") \
            + upstream_requests(upstream, "GET", "/manifests/v1") == 1
