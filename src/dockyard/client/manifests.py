"""Manifests and indexes as the client sees them: media types, descriptors, platforms."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dockyard.client.errors import ManifestError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

# What we accept when fetching or resolving a manifest: everything a registry may store, so
# it never has to convert (or refuse) what it serves.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST,
                             DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def platform_text(platform: Any) -> str | None:
    """``os/architecture[/variant]`` (plus ``:os.version`` when there is one)."""
    if not isinstance(platform, dict):
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    text = f"{os_name}/{arch}"
    variant = platform.get("variant")
    if isinstance(variant, str) and variant:
        text += f"/{variant}"
    version = platform.get("os.version")
    if isinstance(version, str) and version:
        text += f":{version}"
    return text


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int | None  # None: unknown (schema 1 layers carry no sizes)
    platform: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise ManifestError(f"{where} is not a descriptor object")
        digest, size = value.get("digest"), value.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
            raise ManifestError(f"{where} lacks a digest or a size")
        annotations = value.get("annotations")
        return cls(str(value.get("mediaType", "")), digest, size,
                   platform_text(value.get("platform")),
                   {str(k): str(v) for k, v in annotations.items()}
                   if isinstance(annotations, dict) else {})


@dataclass(frozen=True)
class Manifest:
    """A fetched manifest: its bytes, digest and media type, parsed on demand."""

    data: bytes
    digest: str
    media_type: str
    pushed: datetime | None = None  # the registry's Last-Modified, where it sends one

    @property
    def document(self) -> dict[str, Any]:
        try:
            document = json.loads(self.data)
        except ValueError as error:
            raise ManifestError(f"manifest {self.digest} is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ManifestError(f"manifest {self.digest} is not a JSON object")
        return document

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def kind(self) -> str:
        """``index``, ``image`` or ``schema1`` (from the media type, else the document)."""
        media_type = self.media_type
        if media_type in INDEX_TYPES:
            return "index"
        if media_type in IMAGE_TYPES:
            return "image"
        if media_type in SCHEMA1_TYPES:
            return "schema1"
        document = self.document
        if isinstance(document.get("manifests"), list):
            return "index"
        if document.get("schemaVersion") == 1:
            return "schema1"
        if "config" in document or "layers" in document:
            return "image"
        raise ManifestError(f"manifest {self.digest} has an unknown media type {media_type!r}")

    @property
    def is_index(self) -> bool:
        return self.kind == "index"

    def children(self) -> list[Descriptor]:
        entries = self.document.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError(f"index {self.digest} has no manifests list")
        return [Descriptor.parse(entry, f"manifests[{n}] of {self.digest}")
                for n, entry in enumerate(entries)]

    def config(self) -> Descriptor | None:
        value = self.document.get("config")
        return None if value is None else Descriptor.parse(value, f"config of {self.digest}")

    def layers(self) -> list[Descriptor]:
        """Layers (with sizes), or for schema 1 the ``fsLayers`` (unique, size unknown)."""
        document = self.document
        if self.kind == "schema1":
            seen: list[Descriptor] = []
            for entry in reversed(document.get("fsLayers") or []):
                digest = entry.get("blobSum") if isinstance(entry, dict) else None
                if isinstance(digest, str) and all(d.digest != digest for d in seen):
                    seen.append(Descriptor("", digest, None))
            return seen
        entries = document.get("layers") or []
        if not isinstance(entries, list):
            raise ManifestError(f"manifest {self.digest}: layers is not a list")
        return [Descriptor.parse(entry, f"layers[{n}] of {self.digest}")
                for n, entry in enumerate(entries)]

    def schema1_platform(self) -> str | None:
        document = self.document
        os_name, arch = "linux", document.get("architecture")
        return f"{os_name}/{arch}" if isinstance(arch, str) and arch else None
