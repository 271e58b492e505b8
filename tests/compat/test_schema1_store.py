"""Docker schema 1 manifests left in a store by distribution, served by dockyard.

Old registries hold schema 1 images.  distribution 2.8 accepts new ones only with
``compatibility.schema1.enabled``, and stores just the canonical (unsigned) manifest; on every
GET it signs that payload again with a key of its own and serves a JWS as
``application/vnd.docker.distribution.manifest.v1+prettyjws``, whose canonical payload hashes
to the manifest's digest.  Clients check this: dockerd refuses an unsigned schema 1 manifest
("missing signature key").  A drop-in replacement must keep such images pullable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Skopeo, run
from tests.support.daemons import Daemon, run_dockerd
from tests.support.images import read_oci_layout, sample_image, sha256_digest, write_image_layout
from tests.support.server import RunningRegistry, require_tool, run_registry

pytestmark = pytest.mark.clients

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
ACCEPT = ", ".join([SCHEMA1_SIGNED, SCHEMA1])


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_payload(signed: bytes) -> bytes:
    """The payload a schema 1 JWS signs (what its digest is computed over), as libtrust does."""
    document = json.loads(signed)
    assert document.get("signatures"), "schema 1 manifest served without signatures"
    protected = json.loads(b64url_decode(document["signatures"][0]["protected"]))
    return signed[: protected["formatLength"]] + b64url_decode(protected["formatTail"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """A store with one schema 1 image pushed through distribution; yields root, digest, layout."""
    require_tool("docker-registry")
    tmp = tmp_path_factory.mktemp("schema1")
    skopeo = Skopeo(require_tool("skopeo"), tmp / "skopeo")
    image = sample_image("schema1", layers=2)
    layout = write_image_layout(tmp / "src", "v1", image)
    root = tmp / "root"
    (tmp / "distribution").mkdir()
    config = {"compatibility": {"schema1": {"enabled": True}}}
    with run_registry(tmp / "distribution", "distribution", root, config) as registry:
        skopeo.copy(
            layout.ref("v1"), f"docker://{registry.host}/legacy/image:v1", "--format", "v2s1"
        )
        response = httpx.get(
            f"{registry.url}/v2/legacy/image/manifests/v1", headers={"Accept": ACCEPT}
        )
        assert response.headers["content-type"] == SCHEMA1_SIGNED
        digest = response.headers["docker-content-digest"]
        assert sha256_digest(canonical_payload(response.content)) == digest
    yield root, digest, tmp / "src"


@pytest.fixture(scope="module")
def dockyard(
    store: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    root = store[0]
    with run_registry(tmp_path_factory.mktemp("schema1-dockyard"), "dockyard", root) as running:
        yield running


def test_served_as_signed_schema1(store: tuple[Path, str, Path], dockyard: RunningRegistry) -> None:
    _, digest, _ = store
    for reference in ("v1", digest):
        response = httpx.get(
            f"{dockyard.url}/v2/legacy/image/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        assert response.status_code == 200, response.text
        assert response.headers["docker-content-digest"] == digest
        assert response.headers["content-type"] == SCHEMA1_SIGNED
        assert sha256_digest(canonical_payload(response.content)) == digest


def test_skopeo_pulls_schema1(
    tmp_path: Path, store: tuple[Path, str, Path], dockyard: RunningRegistry
) -> None:
    _, digest, source = store
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    original = read_oci_layout(source)
    image = sample_image("schema1", layers=2)
    skopeo.copy(f"docker://{dockyard.host}/legacy/image:v1", f"oci:{tmp_path / 'back'}:v1")
    back = read_oci_layout(tmp_path / "back")
    for layer in image.layers:
        assert back.read_blob(layer.compressed.digest) == original.read_blob(
            layer.compressed.digest
        )
    info = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{dockyard.host}/legacy/image:v1").stdout
    )
    assert info["Digest"] == digest


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    docker = require_tool("docker")
    with run_dockerd(
        tmp_path_factory.mktemp("schema1-dockerd"), require_tool("dockerd"), docker
    ) as daemon:
        yield daemon


def test_docker_pulls_schema1(
    store: tuple[Path, str, Path], dockyard: RunningRegistry, dockerd: Daemon
) -> None:
    """dockerd 20.10 pulls schema 1 images (distribution serves them signed)."""
    _, digest, _ = store
    docker = require_tool("docker")
    reference = f"{dockyard.host}/legacy/image:v1"
    run([docker, "pull", reference], env=dockerd.env)
    output = run(
        [docker, "image", "inspect", "--format", "{{json .RepoDigests}}", reference],
        env=dockerd.env,
    ).stdout
    assert f"{dockyard.host}/legacy/image@{digest}" in json.loads(output)
