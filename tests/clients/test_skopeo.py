"""skopeo against the registry: push, list, inspect, pull back, delete, cross-repository copy.

The images are built here in Python as OCI image layouts (``oci:DIR:tag``), so every digest is
known in advance and compared with what the registry serves and what skopeo pulls back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.conftest import KIND, TlsRegistry
from tests.support.clients import RegistryReader, Skopeo, run_binary
from tests.support.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    build_image,
    build_index,
    large_image,
    read_oci_layout,
    sample_image,
    sha256_digest,
    write_image_layout,
)
from tests.support.server import RunningRegistry, run_registry

pytestmark = pytest.mark.clients

OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def test_push_multilayer_image(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    image = sample_image("skopeo-push", layers=4)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"

    skopeo.copy(layout.ref("v1"), f"{remote}:v1")

    # The registry keeps the manifest byte for byte, under the digest of those bytes.
    raw = skopeo.inspect_raw(f"{remote}:v1")
    assert raw == image.manifest.data
    served = reader.manifest(repo, "v1")
    assert served.data == image.manifest.data
    assert served.media_type == OCI_MANIFEST
    assert served.digest_header == image.manifest.digest
    assert reader.manifest(repo, image.manifest.digest).data == image.manifest.data
    for blob in image.blobs:
        assert reader.blob(repo, blob.digest) == blob.data

    # skopeo inspect (non-raw) reads the config through the registry too.
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"{remote}:v1").stdout)
    assert info["Digest"] == image.manifest.digest
    assert info["Architecture"] == "amd64"
    assert info["Labels"] == {"org.example.name": "skopeo-push"}
    assert info["Layers"] == [layer.compressed.digest for layer in image.layers]


def test_large_layer(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """A 40 MiB incompressible layer goes up and comes back intact."""
    image = large_image("skopeo-large", 40 * 1024 * 1024)
    layout = write_image_layout(tmp_path / "src", "large", image)
    remote = f"docker://{target.host}/{repo}"
    skopeo.copy(layout.ref("large"), f"{remote}:large")

    large = image.layers[1].compressed
    head = reader.http.head(f"/v2/{repo}/blobs/{large.digest}")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == large.size
    skopeo.copy(f"{remote}:large", f"oci:{tmp_path / 'back'}:large")
    back = read_oci_layout(tmp_path / "back")
    assert back.read_blob(large.digest) == large.data
    assert back.read_blob(image.manifest.digest) == image.manifest.data


def test_duplicate_layers(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """A manifest may list the same layer twice (common for empty layers)."""
    same = {"etc/same.conf": b"same content in two layers\n"}
    image = build_image([same, {"bin/tool": b"#!/bin/sh\n"}, same])
    assert image.layers[0].compressed.digest == image.layers[2].compressed.digest
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"
    skopeo.copy(layout.ref("v1"), f"{remote}:v1")

    assert reader.manifest(repo, "v1").data == image.manifest.data
    skopeo.copy(f"{remote}:v1", f"oci:{tmp_path / 'back'}:v1")
    back = read_oci_layout(tmp_path / "back")
    assert back.read_blob(image.manifest.digest) == image.manifest.data
    for blob in image.blobs:
        assert back.read_blob(blob.digest) == blob.data


def test_list_tags(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    image = sample_image("skopeo-tags", layers=2)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"
    # Tags may have upper case, start with "_", and be up to 128 characters long.
    tags = ["v1", "v1.0", "latest", "0-rc_1", "_Upper.Case-Tag", "T" + "a1._-" * 25 + "xy"]
    assert len(tags[-1]) == 128
    for tag in tags:
        skopeo.copy(layout.ref("v1"), f"{remote}:{tag}")

    assert sorted(skopeo.list_tags(remote)) == sorted(tags)
    assert sorted(reader.tags(repo)) == sorted(tags)
    assert repo in reader.catalog()


def test_pull_back_to_oci_layout(
    tmp_path: Path, target: RunningRegistry, skopeo: Skopeo, repo: str
) -> None:
    image = sample_image("skopeo-pull", layers=3)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"
    skopeo.copy(layout.ref("v1"), f"{remote}:v1")

    skopeo.copy(f"{remote}:v1", f"oci:{tmp_path / 'back'}:pulled")

    back = read_oci_layout(tmp_path / "back")
    assert back.tags["pulled"]["digest"] == image.manifest.digest
    assert back.read_blob(image.manifest.digest) == image.manifest.data
    expected = {image.manifest.digest, *(blob.digest for blob in image.blobs)}
    assert back.blob_digests() == expected
    for blob in image.blobs:
        assert back.read_blob(blob.digest) == blob.data

    # Pulling by digest gives the same manifest.
    skopeo.copy(f"{remote}@{image.manifest.digest}", f"oci:{tmp_path / 'bydigest'}:pulled")
    by_digest = read_oci_layout(tmp_path / "bydigest")
    assert by_digest.tags["pulled"]["digest"] == image.manifest.digest


def test_push_and_pull_multi_platform_index(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    index = build_index(
        [sample_image("skopeo-multi", "amd64"), sample_image("skopeo-multi", "arm64", layers=2)]
    )
    layout = write_image_layout(tmp_path / "src", "multi", index)
    remote = f"docker://{target.host}/{repo}"

    skopeo.copy(layout.ref("multi"), f"{remote}:multi", "--all")

    assert skopeo.inspect_raw(f"{remote}:multi") == index.index.data
    served = reader.manifest(repo, "multi")
    assert served.media_type == OCI_INDEX
    assert served.digest_header == index.index.digest
    for image in index.images:
        assert skopeo.inspect_raw(f"{remote}@{image.manifest.digest}") == image.manifest.data
        for blob in image.blobs:
            assert reader.blob(repo, blob.digest) == blob.data

    # Platform selection happens in the client, from the index the registry served.
    info = json.loads(
        skopeo(
            "--override-arch", "arm64", "inspect", "--tls-verify=false", f"{remote}:multi"
        ).stdout
    )
    assert info["Architecture"] == "arm64"
    assert info["Layers"] == [layer.compressed.digest for layer in index.images[1].layers]

    skopeo.copy(f"{remote}:multi", f"oci:{tmp_path / 'back'}:all", "--all")
    back = read_oci_layout(tmp_path / "back")
    assert back.tags["all"]["digest"] == index.index.digest
    expected = {index.index.digest, *(blob.digest for blob in index.blobs)}
    assert back.blob_digests() == expected
    for blob in index.blobs:
        assert back.read_blob(blob.digest) == blob.data


def test_docker_schema2_conversion(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """skopeo converts to Docker schema 2 on push; the registry serves it with Docker types."""
    image = sample_image("skopeo-v2s2", layers=2)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"

    skopeo.copy(layout.ref("v1"), f"{remote}:v2s2", "--format", "v2s2")

    served = reader.manifest(repo, "v2s2")
    assert served.media_type == DOCKER_MANIFEST
    document = served.json()
    assert document["mediaType"] == DOCKER_MANIFEST
    assert served.digest_header == served.digest
    assert [layer["digest"] for layer in document["layers"]] == [
        layer.compressed.digest for layer in image.layers
    ]
    config = reader.blob(repo, document["config"]["digest"])
    assert sha256_digest(config) == document["config"]["digest"]
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    assert skopeo.inspect_raw(f"{remote}:v2s2") == served.data


def test_docker_manifest_list(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """skopeo turns an OCI index into a Docker manifest list over Docker schema 2 images."""
    index = build_index(
        [
            sample_image("skopeo-list", "amd64", layers=1),
            sample_image("skopeo-list", "ppc64le", layers=2),
        ]
    )
    layout = write_image_layout(tmp_path / "src", "list", index)
    remote = f"docker://{target.host}/{repo}"

    skopeo.copy(layout.ref("list"), f"{remote}:list", "--all", "--format", "v2s2")

    served = reader.manifest(repo, "list")
    assert served.media_type == DOCKER_LIST
    assert served.digest_header == served.digest
    assert skopeo.inspect_raw(f"{remote}:list") == served.data
    document = served.json()
    assert document["mediaType"] == DOCKER_LIST
    platforms = [entry["platform"]["architecture"] for entry in document["manifests"]]
    assert platforms == ["amd64", "ppc64le"]
    for entry, image in zip(document["manifests"], index.images, strict=True):
        assert entry["mediaType"] == DOCKER_MANIFEST
        child = reader.manifest(repo, entry["digest"])
        assert child.media_type == DOCKER_MANIFEST
        assert child.digest == entry["digest"]
        assert len(child.data) == entry["size"]
        assert [layer["digest"] for layer in child.json()["layers"]] == [
            layer.compressed.digest for layer in image.layers
        ]
        for layer in image.layers:
            assert reader.blob(repo, layer.compressed.digest) == layer.compressed.data

    # And back: the pulled list and its images keep their digests.
    skopeo.copy(f"{remote}:list", f"dir:{tmp_path / 'back'}", "--all")
    assert (tmp_path / "back" / "manifest.json").read_bytes() == served.data


def test_zstd_layers(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """skopeo recompresses with zstd; the registry takes the zstd layer media type as is."""
    image = sample_image("skopeo-zstd", layers=2)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{target.host}/{repo}"
    skopeo.copy(layout.ref("v1"), f"{remote}:zstd", "--dest-compress-format", "zstd")

    served = reader.manifest(repo, "zstd")
    document = served.json()
    assert [layer["mediaType"] for layer in document["layers"]] == [OCI_LAYER_ZSTD] * 2
    assert document["config"]["digest"] == image.config.digest
    skopeo.copy(f"{remote}:zstd", f"oci:{tmp_path / 'back'}:zstd")
    back = read_oci_layout(tmp_path / "back")
    assert back.tags["zstd"]["digest"] == served.digest
    for layer in document["layers"]:
        data = reader.blob(repo, layer["digest"])
        assert data[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic number
        assert back.read_blob(layer["digest"]) == data


def test_delete(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    keep = sample_image("skopeo-keep", layers=1)
    doomed = sample_image("skopeo-delete", layers=2)
    write_image_layout(tmp_path / "src", "keep", keep)
    layout = write_image_layout(tmp_path / "src", "doomed", doomed)
    remote = f"docker://{target.host}/{repo}"
    skopeo.copy(layout.ref("keep"), f"{remote}:keep")
    skopeo.copy(layout.ref("doomed"), f"{remote}:doomed")
    skopeo.copy(layout.ref("doomed"), f"{remote}:doomed-too")
    assert sorted(skopeo.list_tags(remote)) == ["doomed", "doomed-too", "keep"]

    # skopeo delete resolves the tag and deletes the manifest by digest.
    skopeo("delete", "--tls-verify=false", f"{remote}:doomed")

    assert reader.manifest_status(repo, doomed.manifest.digest) == 404
    assert reader.manifest_status(repo, "doomed") == 404
    failed = skopeo("inspect", "--raw", "--tls-verify=false", f"{remote}:doomed", check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower()
    # Every tag of the deleted manifest goes with it; other tags stay.
    assert skopeo.list_tags(remote) == ["keep"]
    assert skopeo.inspect_raw(f"{remote}:keep") == keep.manifest.data


def test_copy_between_repositories(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """Copying inside one registry lets skopeo mount blobs from the source repository."""
    index = build_index(
        [sample_image("skopeo-mount", "amd64"), sample_image("skopeo-mount", "s390x")]
    )
    layout = write_image_layout(tmp_path / "src", "v1", index)
    source = f"{repo}/source"
    destination = f"{repo}/destination"
    skopeo.copy(layout.ref("v1"), f"docker://{target.host}/{source}:v1", "--all")
    for blob in index.blobs:
        if not blob.media_type.endswith("manifest.v1+json"):
            assert not reader.has_blob(destination, blob.digest)

    skopeo.copy(
        f"docker://{target.host}/{source}:v1",
        f"docker://{target.host}/{destination}:copied",
        "--all",
    )

    assert reader.manifest(destination, "copied").data == index.index.data
    for image in index.images:
        assert reader.manifest(destination, image.manifest.digest).data == image.manifest.data
        for blob in image.blobs:
            assert reader.blob(destination, blob.digest) == blob.data
    assert reader.tags(destination) == ["copied"]
    assert reader.tags(source) == ["v1"]
    catalog = reader.catalog()
    assert source in catalog
    assert destination in catalog


def test_tls_with_private_ca(
    tmp_path: Path, tls_target: TlsRegistry, skopeo: Skopeo, repo: str
) -> None:
    """Over HTTPS, skopeo verifies the registry's certificate against the CA it is given."""
    image = sample_image("skopeo-tls", layers=2)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    remote = f"docker://{tls_target.running.host}/{repo}"
    cert_dir = str(tls_target.cert_dir)

    # Without the CA, the certificate is rejected.
    refused = skopeo("copy", layout.ref("v1"), f"{remote}:v1", check=False)
    assert refused.returncode != 0
    assert "certificate" in refused.stderr

    skopeo("copy", "--quiet", "--dest-cert-dir", cert_dir, layout.ref("v1"), f"{remote}:v1")
    raw = run_binary(
        [
            skopeo.binary,
            "--policy",
            str(skopeo.policy),
            "inspect",
            "--raw",
            "--cert-dir",
            cert_dir,
            f"{remote}:v1",
        ]
    )
    assert raw == image.manifest.data
    tags = json.loads(skopeo("list-tags", "--cert-dir", cert_dir, remote).stdout)["Tags"]
    assert tags == ["v1"]
    skopeo(
        "copy", "--quiet", "--src-cert-dir", cert_dir, f"{remote}:v1", f"oci:{tmp_path / 'back'}:v1"
    )
    back = read_oci_layout(tmp_path / "back")
    for blob in image.blobs:
        assert back.read_blob(blob.digest) == blob.data


@pytest.mark.skipif(KIND == "distribution", reason="http.workers is a dockyard setting")
def test_several_worker_processes(tmp_path: Path, skopeo: Skopeo) -> None:
    """With http.workers: 3, an upload's requests land on different processes and still work."""
    index = build_index(
        [sample_image("skopeo-workers", arch, layers=4) for arch in ("amd64", "arm64", "riscv64")]
    )
    layout = write_image_layout(tmp_path / "src", "v1", index)
    config = {"http": {"workers": 3}}
    with run_registry(tmp_path / "registry", kind=KIND, config=config) as running:
        for round_number in range(3):
            repo = f"clients/workers/round{round_number}"
            remote = f"docker://{running.host}/{repo}"
            skopeo.copy(layout.ref("v1"), f"{remote}:v1", "--all")
            assert skopeo.inspect_raw(f"{remote}:v1") == index.index.data
            back = tmp_path / f"back{round_number}"
            skopeo.copy(f"{remote}:v1", f"oci:{back}:v1", "--all")
            pulled = read_oci_layout(back)
            for blob in index.blobs:
                assert pulled.read_blob(blob.digest) == blob.data
        with RegistryReader(running.url) as reader:
            assert sorted(reader.catalog()) == [f"clients/workers/round{n}" for n in range(3)]


def test_list_many_tags(
    tmp_path: Path, target: RunningRegistry, reader: RegistryReader, skopeo: Skopeo, repo: str
) -> None:
    """skopeo lists every tag of a repository with hundreds of them (following any Link)."""
    image = sample_image("skopeo-many-tags", layers=1)
    layout = write_image_layout(tmp_path / "src", "v1", image)
    skopeo.copy(layout.ref("v1"), f"docker://{target.host}/{repo}:v1")
    tags = {"v1", *(f"t{number:04d}" for number in range(300))}
    headers = {"Content-Type": image.manifest.media_type}
    for tag in sorted(tags - {"v1"}):
        response = reader.http.put(
            f"/v2/{repo}/manifests/{tag}", content=image.manifest.data, headers=headers
        )
        assert response.status_code == 201, response.text

    assert sorted(skopeo.list_tags(f"docker://{target.host}/{repo}")) == sorted(tags)
    assert sorted(reader.tags(repo)) == sorted(tags)
