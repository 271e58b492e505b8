"""The docker CLI and a private dockerd against the registry.

dockerd runs with the vfs storage driver and no networking of its own, so it needs nothing
from the machine but a kernel; it talks to the registry over loopback plain HTTP.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import RegistryReader, Skopeo
from tests.support.docker_cli import Docker, load_image, running_docker
from tests.support.images import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Image,
    build_index,
    gunzip_digest,
    large_image,
    sample_image,
    write_image_layout,
)
from tests.support.server import RunningRegistry

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    with running_docker(tmp_path_factory.mktemp("dockerd")) as client:
        yield client


def check_pushed(reader: RegistryReader, repo: str, tag: str, digest: str, image: Image) -> None:
    """The registry holds what docker pushed: docker's manifest over our config and layers."""
    served = reader.manifest(repo, tag)
    assert served.digest == digest
    assert served.digest_header == digest
    assert served.media_type == DOCKER_MANIFEST
    document = served.json()
    assert document["config"]["mediaType"] == DOCKER_CONFIG
    assert document["config"]["digest"] == image.config.digest
    assert reader.blob(repo, image.config.digest) == image.config.data
    # docker compresses the layers itself; their content is our layer tars.
    assert len(document["layers"]) == len(image.layers)
    for descriptor, layer in zip(document["layers"], image.layers, strict=True):
        data = reader.blob(repo, descriptor["digest"])
        assert len(data) == descriptor["size"]
        assert gunzip_digest(data) == layer.diff_id


def test_push_rmi_pull(
    tmp_path: Path, docker: Docker, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    image = sample_image("docker-push", layers=3)
    reference = f"{target.host}/{repo}:v1"
    load_image(docker, tmp_path, image, "dockyard-test/docker-push:v1")
    docker("tag", "dockyard-test/docker-push:v1", reference)

    digest = docker.push(reference)

    check_pushed(reader, repo, "v1", digest, image)
    assert reader.tags(repo) == ["v1"]

    docker("rmi", reference, "dockyard-test/docker-push:v1")
    assert not docker.has_image(reference)

    docker("pull", reference)
    assert docker.image_id(reference) == image.config.digest
    assert f"{target.host}/{repo}@{digest}" in docker.repo_digests(reference)

    # Pull by digest too.
    docker("rmi", reference)
    docker("pull", f"{target.host}/{repo}@{digest}")
    assert docker.image_id(f"{target.host}/{repo}@{digest}") == image.config.digest

    # A second push of the same image finds every blob already there and keeps the digest.
    docker("tag", f"{target.host}/{repo}@{digest}", f"{target.host}/{repo}:again")
    assert docker.push(f"{target.host}/{repo}:again") == digest
    assert sorted(reader.tags(repo)) == ["again", "v1"]


def test_push_shares_layers_across_repositories(
    tmp_path: Path, docker: Docker, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    """Pushing an image already in another repository mounts its blobs from there."""
    image = sample_image("docker-mount", layers=2)
    first = f"{target.host}/{repo}/first:v1"
    second = f"{target.host}/{repo}/second:v1"
    load_image(docker, tmp_path, image, first)
    digest = docker.push(first)
    docker("tag", first, second)

    output = docker("push", second)
    assert f"digest: {digest}" in output
    # docker reports each layer the registry mounted instead of receiving it again.
    assert output.count(f"Mounted from {repo}/first") == len(image.layers), output

    check_pushed(reader, f"{repo}/second", "v1", digest, image)
    catalog = reader.catalog()
    assert f"{repo}/first" in catalog
    assert f"{repo}/second" in catalog


def test_large_layer(
    tmp_path: Path, docker: Docker, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    """A 24 MiB incompressible layer, streamed by dockerd in one chunked PATCH."""
    image = large_image("docker-large", 24 * 1024 * 1024)
    reference = f"{target.host}/{repo}:large"
    load_image(docker, tmp_path, image, reference)
    digest = docker.push(reference)
    check_pushed(reader, repo, "large", digest, image)
    docker("rmi", reference)
    docker("pull", reference)
    assert docker.image_id(reference) == image.config.digest


def test_manifest_create_and_push(
    tmp_path: Path, docker: Docker, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    images = {
        "amd64": sample_image("docker-multi", "amd64", layers=2),
        "arm64": sample_image("docker-multi", "arm64", layers=1),
    }
    pushed: dict[str, str] = {}
    for arch, image in images.items():
        reference = f"{target.host}/{repo}:{arch}"
        load_image(docker, tmp_path, image, reference)
        pushed[arch] = docker.push(reference)

    multi = f"{target.host}/{repo}:multi"
    docker(
        "manifest",
        "create",
        "--insecure",
        multi,
        f"{target.host}/{repo}:amd64",
        f"{target.host}/{repo}:arm64",
    )
    output = docker("manifest", "push", "--insecure", "--purge", multi)
    found = re.search(r"sha256:[0-9a-f]{64}", output)
    assert found, f"no digest in docker manifest push output:\n{output}"

    served = reader.manifest(repo, "multi")
    assert served.digest == found.group(0)
    assert served.media_type == DOCKER_LIST
    document = served.json()
    assert document["mediaType"] == DOCKER_LIST
    listed = {entry["platform"]["architecture"]: entry for entry in document["manifests"]}
    assert set(listed) == {"amd64", "arm64"}
    for arch, entry in listed.items():
        assert entry["digest"] == pushed[arch]
        assert entry["platform"]["os"] == "linux"
        child = reader.manifest(repo, entry["digest"])
        assert len(child.data) == entry["size"]
        assert child.json()["config"]["digest"] == images[arch].config.digest

    # The daemon picks the platform it is asked for from the list the registry serves.
    docker("rmi", f"{target.host}/{repo}:arm64", f"{target.host}/{repo}:amd64")
    docker("pull", "--platform", "linux/arm64", multi)
    assert docker.image_id(multi) == images["arm64"].config.digest
    docker("rmi", multi)
    docker("pull", "--platform", "linux/amd64", multi)
    assert docker.image_id(multi) == images["amd64"].config.digest

    # docker manifest inspect reads the list back through the registry.
    inspected = json.loads(docker("manifest", "inspect", "--insecure", multi))
    assert [entry["digest"] for entry in inspected["manifests"]] == [
        entry["digest"] for entry in document["manifests"]
    ]


def test_build_from_scratch_and_push(
    tmp_path: Path, docker: Docker, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "hello.txt").write_text("hello from a dockyard test build\n")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL org.example.built=yes\n"
    )
    reference = f"{target.host}/{repo}:built"

    docker("build", "--tag", reference, str(context))
    image_id = docker.image_id(reference)
    digest = docker.push(reference)

    served = reader.manifest(repo, "built")
    assert served.digest == digest
    document = served.json()
    assert document["config"]["digest"] == image_id
    config = json.loads(reader.blob(repo, image_id))
    assert config["config"]["Labels"] == {"org.example.built": "yes"}
    (layer,) = document["layers"]
    content = gzip.decompress(reader.blob(repo, layer["digest"]))
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None
        assert member.read() == b"hello from a dockyard test build\n"

    docker("rmi", reference)
    docker("pull", reference)
    assert docker.image_id(reference) == image_id


def test_pull_oci_index_pushed_by_skopeo(
    tmp_path: Path, docker: Docker, target: RunningRegistry, skopeo: Skopeo, repo: str
) -> None:
    """dockerd pulls an OCI image index and OCI manifests that another client pushed."""
    index = build_index(
        [sample_image("docker-oci", "amd64", layers=2), sample_image("docker-oci", "arm64")]
    )
    layout = write_image_layout(tmp_path / "src", "v1", index)
    skopeo.copy(layout.ref("v1"), f"docker://{target.host}/{repo}:v1", "--all")
    reference = f"{target.host}/{repo}:v1"
    for platform, image in zip(("linux/amd64", "linux/arm64"), index.images, strict=True):
        docker("pull", "--platform", platform, reference)
        assert docker.image_id(reference) == image.config.digest
        assert f"{target.host}/{repo}@{index.index.digest}" in docker.repo_digests(reference)
        docker("rmi", reference)
