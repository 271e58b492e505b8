"""Build small, real container images in Python for the client and compatibility tests.

Everything here is deterministic: the same files give the same layer, config and manifest
digests on every run, so tests can compare what a client pushed or pulled byte for byte.

Formats written:

* OCI image layout directories (``oci:DIR:tag`` for skopeo), with ``oci-layout``,
  ``index.json`` and ``blobs/sha256/...``;
* docker-archive tarballs (what ``docker save`` writes and ``docker load`` / ``podman load``
  read): ``manifest.json``, the config and the uncompressed layer tars.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """JSON bytes with sorted keys and no spaces, as image tools usually write them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """A piece of content addressed by its digest."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Layer:
    """A filesystem layer: the uncompressed tar (its digest is the diff ID) and its gzip."""

    tar: bytes
    compressed: Blob

    @property
    def diff_id(self) -> str:
        return sha256_digest(self.tar)


@dataclass(frozen=True)
class Image:
    """A single-platform image: config, layers and the manifest that ties them together."""

    config: Blob
    layers: tuple[Layer, ...]
    manifest: Blob
    architecture: str
    os: str = "linux"

    @property
    def blobs(self) -> list[Blob]:
        """Every blob the manifest references (config first), not the manifest itself."""
        return [self.config, *(layer.compressed for layer in self.layers)]

    def platform(self) -> dict[str, str]:
        return {"architecture": self.architecture, "os": self.os}


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform image: an index (or Docker manifest list) over single images."""

    index: Blob
    images: tuple[Image, ...]

    @property
    def blobs(self) -> list[Blob]:
        """Every manifest and blob below the index, not the index itself."""
        found: list[Blob] = []
        for image in self.images:
            found.append(image.manifest)
            found.extend(image.blobs)
        return found


def layer_tar(files: Mapping[str, bytes], mode: int = 0o644) -> bytes:
    """An uncompressed tar with the given regular files (and their parent directories)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for name in sorted(files):
            parts = name.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 0
                    tar.addfile(info)
            data = files[name]
            info = tarfile.TarInfo(name.strip("/"))
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def build_layer(files: Mapping[str, bytes], media_type: str = OCI_LAYER_GZIP) -> Layer:
    tar = layer_tar(files)
    return Layer(tar=tar, compressed=Blob(media_type, gzip_bytes(tar)))


def build_image(
    layers: Iterable[Mapping[str, bytes]],
    architecture: str = "amd64",
    os: str = "linux",
    labels: Mapping[str, str] | None = None,
    docker: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An image whose layers hold the given files; ``docker=True`` uses Docker media types."""
    layer_media_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    built = tuple(build_layer(files, layer_media_type) for files in layers)
    config_doc: dict[str, Any] = {
        "architecture": architecture,
        "os": os,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Labels": dict(labels or {}), "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in built]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"dockyard test layer {n}"}
            for n in range(len(built))
        ],
    }
    config = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, canonical_json(config_doc))
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.compressed.descriptor() for layer in built],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    manifest = Blob(manifest_doc["mediaType"], json.dumps(manifest_doc, indent=2).encode())
    return Image(config=config, layers=built, manifest=manifest, architecture=architecture, os=os)


def build_index(images: Iterable[Image], docker: bool = False) -> ImageIndex:
    """An OCI image index (or a Docker manifest list) over the given images."""
    members = tuple(images)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST if docker else OCI_INDEX,
        "manifests": [image.manifest.descriptor(platform=image.platform()) for image in members],
    }
    return ImageIndex(
        index=Blob(str(doc["mediaType"]), json.dumps(doc, indent=3).encode()), images=members
    )


def sample_image(
    name: str, architecture: str = "amd64", layers: int = 3, docker: bool = False
) -> Image:
    """A small multi-layer image whose content depends on ``name`` and ``architecture``."""
    contents = []
    for n in range(layers):
        contents.append(
            {
                f"layer{n}/{name}.txt": f"{name} {architecture} layer {n}\n".encode(),
                f"layer{n}/data.bin": hashlib.sha256(f"{name}/{architecture}/{n}".encode()).digest()
                * (64 * (n + 1)),
            }
        )
    return build_image(
        contents,
        architecture=architecture,
        labels={"org.example.name": name},
        docker=docker,
    )


def large_image(name: str, size: int, architecture: str = "amd64") -> Image:
    """An image with one small layer and one layer of ``size`` incompressible bytes."""
    rng = random.Random(f"{name}/{size}")
    # In pieces: randbytes takes at most 2**28 bytes at a time (its bit count is a C int).
    piece = 64 * 1024 * 1024
    noise = b"".join(rng.randbytes(min(piece, size - start)) for start in range(0, size, piece))
    return build_image(
        [{f"{name}/small.txt": b"small\n"}, {f"{name}/large.bin": noise}],
        architecture=architecture,
        labels={"org.example.name": name},
    )


# --- OCI image layout -----------------------------------------------------------------------


@dataclass
class OciLayout:
    """An OCI image layout directory on disk."""

    path: Path
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ref(self, tag: str) -> str:
        """The skopeo/containers-image reference of a tag in this layout."""
        return f"oci:{self.path}:{tag}"

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.path / "blobs" / algorithm / hex_digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def blob_digests(self) -> set[str]:
        blobs = self.path / "blobs"
        return {
            f"{algorithm.name}:{entry.name}"
            for algorithm in blobs.iterdir()
            for entry in algorithm.iterdir()
        }


def write_oci_layout(path: Path, tag: str, top: Blob, blobs: Iterable[Blob]) -> OciLayout:
    """Store ``top`` (a manifest or index) and its blobs in a layout, tagged ``tag``.

    An existing layout at ``path`` keeps its other tags.
    """
    layout = read_oci_layout(path) if (path / "index.json").exists() else OciLayout(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for blob in [top, *blobs]:
        target = layout.blob_path(blob.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob.data)
    layout.tags[tag] = top.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(layout.tags.values())}
    (path / "index.json").write_text(json.dumps(index))
    return layout


def read_oci_layout(path: Path) -> OciLayout:
    index = json.loads((path / "index.json").read_text())
    layout = OciLayout(path)
    for number, descriptor in enumerate(index.get("manifests", [])):
        name = (descriptor.get("annotations") or {}).get(
            "org.opencontainers.image.ref.name", f"#{number}"
        )
        layout.tags[name] = descriptor
    return layout


def write_image_layout(path: Path, tag: str, image: Image | ImageIndex) -> OciLayout:
    if isinstance(image, ImageIndex):
        return write_oci_layout(path, tag, image.index, image.blobs)
    return write_oci_layout(path, tag, image.manifest, image.blobs)


# --- docker-archive -------------------------------------------------------------------------


def write_docker_archive(path: Path, image: Image, repo_tags: Iterable[str]) -> Path:
    """A ``docker save`` style tarball of ``image`` for ``docker load`` / ``podman load``."""
    config_name = image.config.digest.split(":", 1)[1] + ".json"
    layer_names = [layer.diff_id.split(":", 1)[1] + "/layer.tar" for layer in image.layers]
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    members: dict[str, bytes] = {
        "manifest.json": json.dumps(manifest).encode(),
        config_name: image.config.data,
    }
    for name, layer in zip(layer_names, image.layers, strict=True):
        members[name] = layer.tar
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return path


def gunzip_digest(data: bytes) -> str:
    """Digest of a gzip blob's uncompressed content (a layer's diff ID)."""
    return sha256_digest(gzip.decompress(data))
