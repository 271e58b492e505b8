"""docker, containerd and podman using dockyard as their Docker Hub mirror.

One upstream, distribution 2.8.2, holds a small multi-platform image as ``library/busybox:latest``
(an OCI index, as Docker Hub serves its official images); one dockyard caches it
(``proxy.remoteurl``) and is each client's mirror for ``docker.io``.  The clients cannot reach
the internet: their proxy variables name a closed loopback port (loopback addresses are never
proxied), so a client whose mirror fails falls back to Docker Hub and fails at once.  A pull
that succeeds, gives the image pushed upstream and shows up in the cache's log was served by
the mirror.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.clients.test_containerd import Ctr
from tests.clients.test_podman import Podman
from tests.proxy.test_pull_through import stored_blob, upstream_requests
from tests.support.clients import RegistryReader
from tests.support.daemons import run_containerd
from tests.support.docker_cli import Docker, running_docker
from tests.support.images import Image, ImageIndex, build_image, build_index
from tests.support.oci import push_blob
from tests.support.server import RunningRegistry, require_tool, run_registry

pytestmark = pytest.mark.clients

REPOSITORY = "library/busybox"
TAG = "latest"
HUB_REFERENCE = f"docker.io/{REPOSITORY}:{TAG}"
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
HOST_ARCHITECTURE = _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())


def busybox_like(architecture: str) -> Image:
    """A tiny image of one platform standing in for busybox (its content names the platform)."""
    files = {
        "bin/busybox": f"#!/bin/sh\n# busybox stand-in for linux/{architecture}\n".encode(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    }
    return build_image([files], architecture=architecture,
                       labels={"org.example.name": "mirror-busybox"})


def push_index(registry: RunningRegistry, name: str, tag: str, index: ImageIndex) -> None:
    """Push every platform's blobs and manifest, then the index under `tag`."""
    with registry.client() as client:
        for image in index.images:
            for blob in image.blobs:
                push_blob(client, name, blob.data)
            response = client.put(f"/v2/{name}/manifests/{image.manifest.digest}",
                                  content=image.manifest.data,
                                  headers={"Content-Type": image.manifest.media_type})
            assert response.status_code == 201, response.text
        response = client.put(f"/v2/{name}/manifests/{tag}", content=index.index.data,
                              headers={"Content-Type": index.index.media_type})
        assert response.status_code == 201, response.text


@dataclass(frozen=True)
class Served:
    """One request in the cache's access log."""

    method: str
    path: str
    status: int
    agent: str


_ACCESS = re.compile(r'msg="(?P<method>[A-Z]+) (?P<path>/v2/\S*) (?P<status>\d{3})" .*'
                     r'http\.request\.useragent=(?P<agent>"(?:[^"\\]|\\.)*"|\S*)')


@dataclass
class Mirror:
    """The upstream, the cache in front of it and what the upstream holds."""

    upstreams: list[RunningRegistry]  # the upstream, and again after each restart
    cache: RunningRegistry
    index: ImageIndex
    stack: ExitStack = field(repr=False)

    @property
    def upstream(self) -> RunningRegistry:
        return self.upstreams[-1]

    @property
    def image(self) -> Image:
        """The index's image for this machine's platform: what a client pulls."""
        (image,) = [image for image in self.index.images
                    if image.architecture == HOST_ARCHITECTURE]
        return image

    def log_mark(self) -> int:
        return self.cache.log_path.stat().st_size

    def log_since(self, mark: int) -> str:
        """What the cache logged since `mark` (a `log_mark`)."""
        with self.cache.log_path.open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def served_since(self, mark: int) -> list[Served]:
        """The requests the cache answered since `mark`."""
        return [Served(found["method"], found["path"], int(found["status"]),
                       found["agent"].strip('"'))
                for found in map(_ACCESS.search, self.log_since(mark).splitlines()) if found]

    def assert_pulled_through(self, mark: int, *, manifests_kept: bool = False) -> None:
        """Since `mark` a client fetched the tag, this platform's manifest and every blob of
        it from the cache; the cache holds them, fetched from the upstream once however many
        clients pulled, and nothing of the other platforms.

        `manifests_kept`: the client may have kept the manifests of an image it removed
        (dockerd keeps them in its content store until its own collection runs), so only
        the tag and the blobs must have come from the cache."""
        served = self.served_since(mark)
        fetched = {(request.method, request.path) for request in served
                   if request.status == 200}
        base = f"/v2/{REPOSITORY}"
        wanted = {("GET", f"{base}/blobs/{blob.digest}") for blob in self.image.blobs}
        if not manifests_kept:
            wanted.add(("GET", f"{base}/manifests/{self.image.manifest.digest}"))
        assert wanted <= fetched, f"not fetched through the cache: {wanted - fetched}\n" + \
            "\n".join(map(str, served))
        assert any(path == f"{base}/manifests/{TAG}" for _, path in fetched), served
        for blob in self.image.blobs:
            assert stored_blob(self.cache, blob.digest).read_bytes() == blob.data
        with RegistryReader(self.cache.url) as reader:
            assert REPOSITORY in reader.catalog()
        tag_link = (self.cache.root / "docker/registry/v2/repositories" / REPOSITORY
                    / "_manifests/tags" / TAG / "current/link")
        assert tag_link.read_text() == self.index.index.digest
        for blob in [self.image.manifest, *self.image.blobs]:
            fetches = sum(upstream_requests(upstream, "GET", blob.digest)
                          for upstream in self.upstreams)
            assert fetches == 1, f"{blob.digest} fetched {fetches} times from the upstream"
        blobs = self.cache.root / "docker/registry/v2/blobs/sha256"
        for other in self.index.images:
            if other is not self.image:
                for blob in [other.manifest, *other.blobs]:
                    assert not (blobs / blob.digest[7:9] / blob.digest[7:]).exists()

    @contextmanager
    def upstream_down(self) -> Iterator[None]:
        """Stop the upstream for the block, then start it again on its port and store."""
        port = int(self.upstream.host.rsplit(":", 1)[1])
        self.upstream.process.terminate()
        self.upstream.process.wait(timeout=10)
        try:
            with pytest.raises(httpx.TransportError):
                httpx.get(self.upstream.url + "/v2/", timeout=2)
            yield
        finally:
            restarted = self.upstream.root.parent / f"restarted-{len(self.upstreams)}"
            restarted.mkdir()
            self.upstreams.append(self.stack.enter_context(run_registry(
                restarted, kind="distribution", root=self.upstream.root, port=port)))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    tmp = tmp_path_factory.mktemp("mirror")
    index = build_index(busybox_like(arch) for arch in sorted({"amd64", "arm64",
                                                                HOST_ARCHITECTURE}))
    with ExitStack() as stack:
        upstream = stack.enter_context(run_registry(tmp / "upstream", kind="distribution"))
        push_index(upstream, REPOSITORY, TAG, index)
        cache = stack.enter_context(run_registry(
            tmp / "cache", config={"proxy": {"remoteurl": upstream.url}}))
        yield Mirror([upstream], cache, index, stack)


@pytest.fixture(scope="module")
def no_internet() -> Iterator[dict[str, str]]:
    """Proxy variables that send every request for a non-loopback host to a loopback port
    that refuses connections (bound, never listening), so Docker Hub fails at once."""
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        variables = {name: proxy for name in names}
        variables.update({name.lower(): proxy for name in names})
        variables.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        yield variables


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror,
           no_internet: dict[str, str]) -> Iterator[Docker]:
    """A private dockerd whose Docker Hub mirror is the cache."""
    with running_docker(tmp_path_factory.mktemp("dockerd"),
                        settings={"registry-mirrors": [mirror.cache.url]},
                        daemon_env=no_internet) as client:
        yield client


def test_docker_pulls_through_the_mirror_and_from_the_cache_with_the_upstream_down(
        docker: Docker, mirror: Mirror) -> None:
    """`docker pull busybox` with `registry-mirrors` set gets the upstream's image from the
    cache, which stores it; with the upstream stopped the same pull is served from the
    cache alone."""
    mark = mirror.log_mark()
    docker("pull", "busybox")
    assert docker.image_id("busybox") == mirror.image.config.digest
    assert f"busybox@{mirror.index.index.digest}" in docker.repo_digests("busybox")
    mirror.assert_pulled_through(mark)

    with mirror.upstream_down():
        docker("rmi", "busybox")
        assert not docker.has_image("busybox")
        mark = mirror.log_mark()
        docker("pull", "busybox")
        assert docker.image_id("busybox") == mirror.image.config.digest
        assert f"busybox@{mirror.index.index.digest}" in docker.repo_digests("busybox")
        mirror.assert_pulled_through(mark, manifests_kept=True)
        warnings = [line for line in mirror.log_since(mark).splitlines()
                    if "level=warning" in line and f"{REPOSITORY}:{TAG}" in line]
        assert warnings, "the cache did not say it served the tag with the upstream down"
    docker("rmi", "busybox")


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory, no_internet: dict[str, str]) -> Iterator[Ctr]:
    binary = require_tool("ctr")
    containerd = require_tool("containerd")
    with run_containerd(tmp_path_factory.mktemp("containerd"), containerd, binary) as daemon:
        # ctr itself resolves and fetches (containerd only stores), so ctr gets the proxy.
        daemon.env.update(no_internet)
        yield Ctr(binary, daemon)


def test_containerd_pulls_through_a_hosts_toml_mirror(
        tmp_path: Path, ctr: Ctr, mirror: Mirror) -> None:
    """`ctr images pull --hosts-dir` with a ``docker.io/hosts.toml`` naming the cache as a
    pull and resolve host gets the upstream's index and this platform's image from it."""
    hosts = tmp_path / "certs.d"
    (hosts / "docker.io").mkdir(parents=True)
    (hosts / "docker.io" / "hosts.toml").write_text(
        'server = "https://registry-1.docker.io"\n\n'
        f"[host.{json.dumps(mirror.cache.url)}]\n"
        '  capabilities = ["pull", "resolve"]\n'
    )
    mark = mirror.log_mark()
    ctr("images", "pull", "--hosts-dir", str(hosts), HUB_REFERENCE)
    assert ctr.image_digests()[HUB_REFERENCE] == mirror.index.index.digest
    for blob in [mirror.index.index, mirror.image.manifest, *mirror.image.blobs]:
        assert ctr.content(blob.digest) == blob.data
    mirror.assert_pulled_through(mark)
    ctr("images", "rm", "--sync", HUB_REFERENCE)


class MirroredPodman(Podman):
    """podman whose registries.conf sends docker.io pulls to a mirror (plain HTTP)."""

    def __init__(self, binary: str, home: Path, runtime: Path, mirror_host: str,
                 env: dict[str, str]) -> None:
        super().__init__(binary, home, runtime, mirror_host)
        Path(self.env["CONTAINERS_REGISTRIES_CONF"]).write_text(
            "unqualified-search-registries = []\n\n"
            "[[registry]]\n"
            'prefix = "docker.io"\n'
            'location = "docker.io"\n\n'
            "[[registry.mirror]]\n"
            f"location = {json.dumps(mirror_host)}\n"
            "insecure = true\n"
        )
        self.env.update(env)


@pytest.fixture
def podman(tmp_path: Path, mirror: Mirror, no_internet: dict[str, str]) -> Iterator[Podman]:
    binary = require_tool("podman")
    # podman refuses a runroot path longer than 50 characters.
    runtime = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    try:
        yield MirroredPodman(binary, tmp_path / "podman", runtime, mirror.cache.host,
                             no_internet)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_podman_pulls_through_a_registries_conf_mirror(podman: Podman, mirror: Mirror) -> None:
    """`podman pull docker.io/library/busybox` with a `[[registry.mirror]]` for docker.io
    gets the upstream's image from the cache."""
    mark = mirror.log_mark()
    podman("pull", "--signature-policy", str(podman.policy), HUB_REFERENCE)
    image_id = mirror.image.config.digest.removeprefix("sha256:")
    assert podman.image_field(HUB_REFERENCE, "Id") == image_id
    assert podman.image_field(HUB_REFERENCE, "Digest") == mirror.index.index.digest
    mirror.assert_pulled_through(mark)
