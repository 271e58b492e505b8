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

from tests.clients.conftest import TlsRegistry
from tests.support.clients import RegistryReader, run
from tests.support.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
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
            "--root",
            str(home / "root"),
            # podman refuses a runroot path longer than 50 characters.
            "--runroot",
            str(runtime / "run"),
            "--tmpdir",
            str(runtime / "tmp"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]

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
    podman(
        "push",
        "--signature-policy",
        str(podman.policy),
        "--digestfile",
        str(digest_file),
        reference,
    )
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
    podman(
        "push",
        "--signature-policy",
        str(podman.policy),
        "--format",
        "oci",
        "--digestfile",
        str(digest_file),
        local,
        reference,
    )
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


def test_manifest_list_push(
    tmp_path: Path, podman: Podman, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    images = {
        "amd64": sample_image("podman-list", "amd64", layers=2),
        "arm64": sample_image("podman-list", "arm64", layers=1),
    }
    pushed: dict[str, str] = {}
    for arch, image in images.items():
        reference = f"{target.host}/{repo}:{arch}"
        archive = write_docker_archive(tmp_path / f"{arch}.tar", image, [reference])
        podman("load", "--signature-policy", str(podman.policy), "--input", str(archive))
        digest_file = tmp_path / f"{arch}.digest"
        podman(
            "push",
            "--signature-policy",
            str(podman.policy),
            "--digestfile",
            str(digest_file),
            reference,
        )
        pushed[arch] = digest_file.read_text().strip()

    podman("manifest", "create", "localhost/dockyard-test/podman-list")
    for arch in images:
        podman(
            "manifest",
            "add",
            "localhost/dockyard-test/podman-list",
            f"docker://{target.host}/{repo}:{arch}",
        )
    digest_file = tmp_path / "list.digest"
    podman(
        "manifest",
        "push",
        "--all",
        "--digestfile",
        str(digest_file),
        "localhost/dockyard-test/podman-list",
        f"docker://{target.host}/{repo}:multi",
    )

    served = reader.manifest(repo, "multi")
    assert served.digest == digest_file.read_text().strip()
    document = served.json()
    assert served.media_type == document["mediaType"]
    assert document["mediaType"] in (DOCKER_LIST, OCI_INDEX)
    listed = {entry["platform"]["architecture"]: entry["digest"] for entry in document["manifests"]}
    assert listed == pushed

    # Pull one platform of the list back.
    podman("rmi", "--all", "--force")
    podman(
        "pull",
        "--signature-policy",
        str(podman.policy),
        "--arch",
        "arm64",
        f"{target.host}/{repo}:multi",
    )
    images_json = json.loads(podman("images", "--format", "json"))
    assert [entry["Id"] for entry in images_json] == [
        images["arm64"].config.digest.removeprefix("sha256:")
    ]


def test_search_catalog_and_tags(
    tmp_path: Path, podman: Podman, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    """podman search reads the catalog; --list-tags reads the tag list."""
    image = sample_image("podman-search", layers=1)
    archive = write_docker_archive(tmp_path / "image.tar", image, ["localhost/search:v1"])
    podman("load", "--signature-policy", str(podman.policy), "--input", str(archive))
    for name, tags in {f"{repo}/alpha": ["1", "2"], f"{repo}/beta": ["latest"]}.items():
        for tag in tags:
            podman(
                "push",
                "--signature-policy",
                str(podman.policy),
                "localhost/search:v1",
                f"docker://{target.host}/{name}:{tag}",
            )

    found = podman(
        "search",
        "--tls-verify=false",
        "--limit",
        "1000",
        "--format",
        "{{.Name}}",
        f"{target.host}/{repo}",
    )
    names = sorted(line.strip() for line in found.splitlines() if line.strip())
    assert names == [f"{target.host}/{repo}/alpha", f"{target.host}/{repo}/beta"]

    listed = json.loads(
        podman(
            "search",
            "--tls-verify=false",
            "--list-tags",
            "--format",
            "json",
            f"{target.host}/{repo}/alpha",
        )
    )
    assert sorted(listed[0]["Tags"]) == ["1", "2"]
    assert sorted(reader.tags(f"{repo}/alpha")) == ["1", "2"]


def test_tls_with_private_ca(tmp_path: Path, podman: Podman, tls_target: TlsRegistry) -> None:
    """podman pushes to and pulls from an HTTPS registry whose CA it is given (--cert-dir)."""
    image = sample_image("podman-tls", layers=2)
    host = tls_target.running.host
    reference = f"{host}/clients/podman-tls:v1"
    archive = write_docker_archive(tmp_path / "image.tar", image, [reference])
    podman("load", "--signature-policy", str(podman.policy), "--input", str(archive))
    cert_dir = str(tls_target.cert_dir)
    digest_file = tmp_path / "digest"
    podman(
        "push",
        "--signature-policy",
        str(podman.policy),
        "--tls-verify=true",
        "--cert-dir",
        cert_dir,
        "--digestfile",
        str(digest_file),
        reference,
    )
    podman("rmi", reference)
    podman(
        "pull",
        "--signature-policy",
        str(podman.policy),
        "--tls-verify=true",
        "--cert-dir",
        cert_dir,
        reference,
    )
    assert podman.image_field(reference, "Id") == image.config.digest.removeprefix("sha256:")
    assert podman.image_field(reference, "Digest") == digest_file.read_text().strip()
