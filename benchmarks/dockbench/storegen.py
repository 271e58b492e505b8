"""Writing large stores directly on disk, in distribution's layout, once per run.

    blobs/sha256/<hex[:2]>/<hex>/data
    repositories/<name>/_layers/sha256/<hex>/link
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link

(paths under <root>/docker/registry/v2; a link file holds `sha256:<hex>`, no newline). Each
server then gets its own copy of the tree, so both start from identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .common import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, BenchError


class StoreWriter:
    def __init__(self, root: Path) -> None:
        self.v2 = root / "docker" / "registry" / "v2"
        self.blob_count = 0
        self._made: set[str] = set()

    def _mkdirs(self, path: Path) -> None:
        key = str(path)
        if key not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(key)

    def blob(self, data: bytes) -> str:
        hexpart = hashlib.sha256(data).hexdigest()
        directory = self.v2 / "blobs" / "sha256" / hexpart[:2] / hexpart
        if str(directory) not in self._made:
            self._mkdirs(directory)
            (directory / "data").write_bytes(data)
            self.blob_count += 1
        return "sha256:" + hexpart

    def link(self, directory: Path, digest: str) -> None:
        self._mkdirs(directory)
        with open(directory / "link", "w") as handle:
            handle.write(digest)

    def image(self, repo: str, tags: list[str], config: bytes, layers: list[bytes]) -> str:
        """Blobs, layer links, revision and tag links of one OCI image. Its manifest digest."""
        base = self.v2 / "repositories" / repo
        config_digest = self.blob(config)
        layer_digests = [self.blob(layer) for layer in layers]
        descriptors = [
            {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(layer)}
            for digest, layer in zip(layer_digests, layers, strict=True)
        ]
        for digest in [config_digest, *layer_digests]:
            self.link(base / "_layers" / "sha256" / digest.split(":", 1)[1], digest)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": descriptors,
            },
            indent=3,
        ).encode()
        digest = self.blob(manifest)
        hexpart = digest.split(":", 1)[1]
        self.link(base / "_manifests" / "revisions" / "sha256" / hexpart, digest)
        for tag in tags:
            tag_dir = base / "_manifests" / "tags" / tag
            self.link(tag_dir / "current", digest)
            self.link(tag_dir / "index" / "sha256" / hexpart, digest)
        return digest


def _config(name: str) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench": name}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    ).encode()


@dataclass
class MetadataStore:
    """One repository with many tags, and enough other repositories to fill the catalog."""

    root: Path
    tags_repo: str
    tags: list[str]
    repositories: list[str]  # every repository, sorted (as the catalog lists them)
    blobs: int = 0


def make_metadata_store(root: Path, repositories: int, tags: int) -> MetadataStore:
    writer = StoreWriter(root)
    shared = os.urandom(1024)
    tags_repo = "tags/many"
    tag_names = [f"t{index:05d}" for index in range(tags)]
    # Every tag its own image (config differs), all sharing one layer.
    for tag in tag_names:
        writer.image(tags_repo, [tag], _config(f"{tags_repo}:{tag}"), [shared])
    names = [f"catalog/r{index:05d}" for index in range(repositories - 1)]
    for name in names:
        writer.image(name, ["latest"], _config(name), [shared])
    return MetadataStore(root, tags_repo, tag_names, sorted([*names, tags_repo]), writer.blob_count)


@dataclass
class GCImage:
    repo: str
    tag: str
    manifest: str
    blobs: list[str]  # config and layers
    deleted: bool


@dataclass
class GCStore:
    root: Path
    images: list[GCImage] = field(default_factory=list)
    blobs: int = 0

    @property
    def expected_deleted(self) -> int:
        return len(self.doomed_blobs())

    def doomed_blobs(self) -> set[str]:
        """Blobs only deleted images use: their manifest, config and own layers."""
        kept: set[str] = set()
        gone: set[str] = set()
        for image in self.images:
            (gone if image.deleted else kept).update([image.manifest, *image.blobs])
        return gone - kept

    def doomed_links(self) -> list[tuple[str, str]]:
        """(repository, digest) of the layer links of the deleted images: their
        repositories are left with no manifest, so a collector that leaves no dangling
        link and no empty repository deletes every one of them."""
        return [(image.repo, digest) for image in self.images if image.deleted
                for digest in image.blobs]


BASE_LAYERS = 20


def deleted_share(delete_every: int) -> str:
    return "every other image" if delete_every == 2 else f"one image in {delete_every}"


def make_gc_store(root: Path, images: int, delete_every: int = 2) -> GCStore:
    """`images` repositories, each one image of config + 4 layers: one base layer shared from
    a pool of BASE_LAYERS, three of its own. Every `delete_every`th image is marked for
    deletion."""
    writer = StoreWriter(root)
    sizes = random.Random(42)
    base = [os.urandom(sizes.randint(1024, 4096)) for _ in range(BASE_LAYERS)]
    store = GCStore(root)
    for index in range(images):
        repo = f"gc/r{index:05d}"
        layers = [base[(index // 2) % BASE_LAYERS]]
        layers += [os.urandom(sizes.randint(1024, 4096)) for _ in range(3)]
        config = _config(repo)
        manifest = writer.image(repo, ["v1"], config, layers)
        digests = ["sha256:" + hashlib.sha256(data).hexdigest() for data in [config, *layers]]
        doomed = index % delete_every == delete_every - 1
        store.images.append(GCImage(repo, "v1", manifest, digests, deleted=doomed))
    store.blobs = writer.blob_count
    return store


def copy_store(source: Path, target: Path) -> None:
    """cp -a: the copy keeps the modification times (dockyard dates unknown blobs by them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["cp", "-a", str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cp -a {source.name}: {done.stderr.strip()[:300]}")
