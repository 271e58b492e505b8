"""podman (containers/image and containers/storage) against the registry.

podman gets its own storage (vfs), runtime directory and registries.conf, where the
registry's loopback address is marked insecure (plain HTTP).  No container is run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import RegistryReader, run
from tests.support.images import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    gunzip_digest,
    sample_image,
    write_docker_archive,
    write_image_layout,
)
from tests.support.server import RunningRegistry, require_tool

pytestmark = pytest.mark.clients


class Podman:
    def __init__(self, binary: str, home: Path, runtime: Path, registry_host: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.home = home
        registries = home / "registries.conf"
        registries.write_text(
            "unqualified-search-registries = []\n\n"
            "[[registry]]\n"
            f'location = "{registry_host}"\n'
            "insecure = true\n"
        )
        self.policy = home / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (home / "auth.json").write_text("{}")
        self.env = {
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        }
        self.global_options = [
            "--root", str(home / "root"),
            # podman refuses a runroot path longer than 50 characters.
            "--runroot", str(runtime / "run"),
            "--tmpdir", str(runtime / "tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    def __call__(self, *args: str) -> str:
        return run([self.binary, *self.global_options, *args], env=self.env).stdout

    def image_field(self, reference: str, field: str) -> str:
        return self("image", "inspect", "--format", "{{." + field + "}}", reference).strip()


@pytest.fixture
def podman(tmp_path: Path, target: RunningRegistry) -> Iterator[Podman]:
    binary = require_tool("podman")
    runtime = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    try:
        yield Podman(binary, tmp_path / "podman", runtime, target.host)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_push_and_pull(
    tmp_path: Path, podman: Podman, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    image = sample_image("podman", layers=3)
    reference = f"{target.host}/{repo}:v1"
    archive = write_docker_archive(tmp_path / "image.tar", image, [reference])
    podman("load", "--signature-policy", str(podman.policy), "--input", str(archive))
    assert podman.image_field(reference, "Id") == image.config.digest.removeprefix("sha256:")

    digest_file = tmp_path / "digest"
    podman("push", "--signature-policy", str(podman.policy), "--digestfile", str(digest_file),
           reference)  # fmt: skip
    digest = digest_file.read_text().strip()

    served = reader.manifest(repo, "v1")
    assert served.digest == digest
    assert served.digest_header == digest
    document = served.json()
    assert served.media_type == document["mediaType"]
    assert document["mediaType"] in (DOCKER_MANIFEST, OCI_MANIFEST)
    assert document["config"]["digest"] == image.config.digest
    assert reader.blob(repo, image.config.digest) == image.config.data
    layers = [reader.blob(repo, layer["digest"]) for layer in document["layers"]]
    assert [gunzip_digest(data) for data in layers] == [layer.diff_id for layer in image.layers]

    podman("rmi", reference)
    podman("pull", "--signature-policy", str(podman.policy), reference)
    assert podman.image_field(reference, "Id") == image.config.digest.removeprefix("sha256:")
    assert podman.image_field(reference, "Digest") == digest


def test_push_oci_format_and_pull_by_digest(
    tmp_path: Path, podman: Podman, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    image = sample_image("podman-oci", layers=2)
    layout = write_image_layout(tmp_path / "layout", "v1", image)
    local = "localhost/dockyard-test/podman-oci:v1"
    podman("pull", "--signature-policy", str(podman.policy), layout.ref("v1"))
    podman("tag", image.config.digest.removeprefix("sha256:"), local)
    reference = f"{target.host}/{repo}:oci"

    digest_file = tmp_path / "digest"
    podman("push", "--signature-policy", str(podman.policy), "--format", "oci",
           "--digestfile", str(digest_file), local, reference)  # fmt: skip
    digest = digest_file.read_text().strip()

    served = reader.manifest(repo, "oci")
    assert served.media_type == OCI_MANIFEST
    assert served.digest == digest
    assert served.json()["config"]["digest"] == image.config.digest
    assert reader.tags(repo) == ["oci"]

    podman("rmi", "--all", "--force")
    podman("pull", "--signature-policy", str(podman.policy), f"{target.host}/{repo}@{digest}")
    images = json.loads(podman("images", "--format", "json"))
    assert [entry["Id"] for entry in images] == [image.config.digest.removeprefix("sha256:")]
