"""Parsing and checking manifest documents (image manifests and indexes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.registry import mediatypes
from dockyard.registry.errors import ManifestInvalid
from dockyard.registry.reference import Digest

# Manifests are small; deeper nesting than this is an attack, not an image.
MAX_JSON_DEPTH = 32
# Sizes are int64 in the image spec (and in SQLite); anything larger is not a real blob.
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    has_urls: bool = False


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()  # config and layers, which must be blobs of the repo
    children: tuple[Descriptor, ...] = ()  # an index's manifests
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = field(default=None)

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES


def references_of(manifest: Manifest) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """What a manifest needs (config, layers, an index's children), each digest once however
    often it is listed, and the size its descriptor gives: as the index records them."""
    sizes: dict[str, int] = {}
    for item in (*manifest.blobs, *manifest.children):
        sizes.setdefault(str(item.digest), item.size)
    return tuple(sizes), tuple(sizes.values())


def parse_manifest(data: bytes, content_type: str | None) -> Manifest:
    """Parse pushed bytes, deciding the media type from Content-Type and the document."""
    document = _load(data)
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in mediatypes.GENERIC_CONTENT_TYPES:
        media_type = declared or _guess_media_type(document)
    else:
        media_type = header
        if declared and declared != media_type:
            raise ManifestInvalid(
                f"mediaType {declared[:200]!r} does not match Content-Type {media_type[:200]!r}",
                {"mediaType": declared[:200], "contentType": media_type[:200]},
            )
    if media_type in (mediatypes.DOCKER_SCHEMA1, mediatypes.DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("schema1 manifests are deprecated and not accepted")
    if media_type not in mediatypes.ACCEPTED_ON_PUSH:
        raise ManifestInvalid(f"unsupported manifest media type {media_type[:200]!r}",
                              {"mediaType": media_type[:200]})
    manifest = interpret(document, media_type)
    _check_pushed(document, manifest)
    return manifest


def parse_stored(data: bytes, media_type: str) -> Manifest | None:
    """Parse a manifest already in the store; None if it is not one we understand."""
    try:
        return interpret(_load(data), media_type)
    except ManifestInvalid:
        return None


def stored_media_type(data: bytes) -> str:
    """Media type of stored bytes that carry no record of their Content-Type."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return mediatypes.OCI_MANIFEST
    if not isinstance(document, dict):
        return mediatypes.OCI_MANIFEST
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if document.get("schemaVersion") == 1:
        return mediatypes.DOCKER_SCHEMA1_SIGNED if "signatures" in document \
            else mediatypes.DOCKER_SCHEMA1
    return _guess_media_type(document)


def interpret(document: dict[str, Any], media_type: str) -> Manifest:
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    subject = _descriptor(document["subject"], "subject") if "subject" in document else None
    artifact_type = _optional_string(document, "artifactType")
    annotations = _annotations(document.get("annotations"), "annotations")
    if media_type in mediatypes.INDEXES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid("an index needs a manifests list")
        children = tuple(_descriptor(item, f"manifests[{n}]") for n, item in enumerate(entries))
        return Manifest(media_type, (), children, subject, artifact_type, annotations)
    if "config" not in document:
        raise ManifestInvalid("an image manifest needs a config descriptor")
    config = _descriptor(document["config"], "config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ManifestInvalid("an image manifest needs a layers list")
    blobs = (config, *(_descriptor(item, f"layers[{n}]") for n, item in enumerate(layers)))
    if artifact_type is None and media_type == mediatypes.OCI_MANIFEST:
        # Referrers report an image's config type when it names no artifactType.
        artifact_type = config.media_type
    return Manifest(media_type, blobs, (), subject, artifact_type, annotations)


def _load(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except RecursionError:
        # The parser gives up on nesting deeper than Python's recursion limit.
        raise ManifestInvalid(f"manifest nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        raise ManifestInvalid(f"manifest is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if _depth(document) > MAX_JSON_DEPTH:
        raise ManifestInvalid(f"manifest nests deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level


def _guess_media_type(document: dict[str, Any]) -> str:
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    return mediatypes.OCI_MANIFEST


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    digest = Digest.parse_in_manifest(value.get("digest"))
    urls = value.get("urls")
    if urls is not None and not isinstance(urls, list):
        raise ManifestInvalid(f"{where}.urls must be a list")
    return Descriptor(
        media_type,
        digest,
        size,
        _optional_string(value, "artifactType"),
        _annotations(value.get("annotations"), f"{where}.annotations"),
        bool(urls),
    )


def _check_pushed(document: dict[str, Any], manifest: Manifest) -> None:
    """What only a push is held to (manifests already stored must still parse, so what they
    reference counts for GC): sizes that fit int64, and index entries' platform, if given,
    an object with strings where clients expect strings (a wrong type breaks every client
    that reads the index)."""
    subject = (manifest.subject,) if manifest.subject else ()
    if any(item.size > MAX_SIZE for item in (*manifest.blobs, *manifest.children, *subject)):
        raise ManifestInvalid(f"descriptor sizes must be at most {MAX_SIZE}")
    if not manifest.is_index:
        return
    for number, entry in enumerate(document.get("manifests") or []):
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if platform is None:
            continue
        where = f"manifests[{number}].platform"
        if not isinstance(platform, dict):
            raise ManifestInvalid(f"{where} must be an object")
        for key in ("architecture", "os", "os.version", "variant"):
            if key in platform and not isinstance(platform[key], str):
                raise ManifestInvalid(f"{where}.{key} must be a string")


def _optional_string(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value


def _annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestInvalid(f"{where} must map strings to strings")
    return value
