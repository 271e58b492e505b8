"""What the management commands do, built on `RegistryClient`: inspect, disk usage, removal.

Sizes: an image's size is its config plus its layers, each distinct blob once; an index's is
the same over all its children together (a layer two platforms share counts once). Disk usage
also counts the manifests themselves, since the store keeps them as blobs too.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dockyard.client.errors import ClientError, ManifestError, NotFound, Unsupported
from dockyard.client.manifests import Descriptor, Manifest, platform_text
from dockyard.client.registry import RegistryClient

IMAGE_CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json",
                                "application/vnd.docker.container.image.v1+json"})
MAX_CONFIG_READ = 1 << 20  # read configs up to 1 MiB to learn an image's platform
MAX_DEPTH = 4  # indexes of indexes: how deep we follow


# -- walking manifests --------------------------------------------------------------------

@dataclass
class Walk:
    """Everything reachable from some manifests of one repository."""

    blobs: dict[str, int] = field(default_factory=dict)  # configs and layers
    manifests: dict[str, int] = field(default_factory=dict)  # manifest documents
    missing: list[str] = field(default_factory=list)  # children the registry does not have

    @property
    def size(self) -> int:
        return sum(self.blobs.values())


class Walker:
    """Fetches manifests (each digest once) and blob sizes for one repository."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._manifests: dict[str, Manifest] = {}
        self._sizes: dict[str, int] = {}

    def manifest(self, reference: str) -> Manifest:
        cached = self._manifests.get(reference)
        if cached is None:
            cached = self.client.manifest(self.repository, reference)
            self._manifests[reference] = self._manifests[cached.digest] = cached
        return cached

    def size_of(self, descriptor: Descriptor) -> int:
        if descriptor.size is not None:
            return descriptor.size
        if descriptor.digest not in self._sizes:
            self._sizes[descriptor.digest] = self.client.blob_size(self.repository,
                                                                   descriptor.digest)
        return self._sizes[descriptor.digest]

    def image_blobs(self, manifest: Manifest) -> dict[str, int]:
        """Config and layers of an image manifest, digest to size."""
        blobs: dict[str, int] = {}
        config = manifest.config()
        if config is not None:
            blobs[config.digest] = self.size_of(config)
        for layer in manifest.layers():
            blobs[layer.digest] = self.size_of(layer)
        return blobs

    def walk(self, manifest: Manifest, into: Walk, depth: int = 0) -> None:
        into.manifests[manifest.digest] = manifest.size
        if not manifest.is_index:
            into.blobs.update(self.image_blobs(manifest))
            return
        if depth >= MAX_DEPTH:
            raise ManifestError(f"indexes nest deeper than {MAX_DEPTH} at {manifest.digest}")
        for child in manifest.children():
            if child.digest in into.manifests:
                continue
            try:
                child_manifest = self.manifest(child.digest)
            except NotFound:
                into.missing.append(child.digest)
                continue
            self.walk(child_manifest, into, depth + 1)

    def platform(self, manifest: Manifest) -> str | None:
        """An image's platform, from its config blob (small configs only)."""
        if manifest.kind == "schema1":
            return manifest.schema1_platform()
        config = manifest.config()
        if (config is None or config.media_type not in IMAGE_CONFIG_TYPES
                or (config.size or 0) > MAX_CONFIG_READ):
            return None
        try:
            document = json.loads(self.client.blob(self.repository, config.digest))
        except (ClientError, ValueError):
            return None
        return platform_text(document)


def iso_time(moment: datetime) -> str:
    """UTC, to the second (what an HTTP date carries): 2024-05-01T12:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- inspect ------------------------------------------------------------------------------

@dataclass
class Child:
    digest: str
    media_type: str
    platform: str | None
    manifest_size: int
    size: int | None  # None: the registry does not have this child


@dataclass
class Inspection:
    reference: str
    digest: str
    media_type: str
    manifest_size: int
    size: int
    platform: str | None = None
    config: Descriptor | None = None
    layers: list[Descriptor] = field(default_factory=list)
    children: list[Child] | None = None  # set for an index
    pushed: datetime | None = None  # where the registry says (dockyard's Last-Modified)

    def as_dict(self) -> dict[str, Any]:
        def desc(d: Descriptor) -> dict[str, Any]:
            return {"digest": d.digest, "mediaType": d.media_type, "size": d.size}

        result: dict[str, Any] = {
            "reference": self.reference, "digest": self.digest, "mediaType": self.media_type,
            "manifestSize": self.manifest_size,
        }
        if self.children is not None:
            result["platforms"] = [
                {"platform": c.platform, "digest": c.digest, "mediaType": c.media_type,
                 "manifestSize": c.manifest_size, "size": c.size} for c in self.children]
        else:
            result["platform"] = self.platform
            result["config"] = None if self.config is None else desc(self.config)
            result["layers"] = [desc(layer) for layer in self.layers]
        result["size"] = self.size
        if self.pushed is not None:
            result["pushed"] = iso_time(self.pushed)
        return result


def inspect(client: RegistryClient, repository: str, reference: str, shown: str
            ) -> Inspection:
    walker = Walker(client, repository)
    manifest = walker.manifest(reference)
    walk = Walk()
    walker.walk(manifest, walk)
    if not manifest.is_index:
        layers = [Descriptor(d.media_type, d.digest, walker.size_of(d), d.platform)
                  for d in manifest.layers()]
        return Inspection(shown, manifest.digest, manifest.media_type, manifest.size,
                          walk.size, walker.platform(manifest), manifest.config(), layers,
                          pushed=manifest.pushed)
    children: list[Child] = []
    for child in manifest.children():
        size: int | None = None
        platform = child.platform
        if child.digest not in walk.missing:
            child_walk = Walk()
            child_manifest = walker.manifest(child.digest)
            walker.walk(child_manifest, child_walk, 1)
            size = child_walk.size
            if platform is None and not child_manifest.is_index:
                platform = walker.platform(child_manifest)
        children.append(Child(child.digest, child.media_type, platform,
                              child.size or 0, size))
    return Inspection(shown, manifest.digest, manifest.media_type, manifest.size, walk.size,
                      children=children, pushed=manifest.pushed)


# -- disk usage ---------------------------------------------------------------------------

@dataclass
class RepositoryUsage:
    name: str
    tags: int
    walk: Walk

    @property
    def blobs(self) -> dict[str, int]:
        return {**self.walk.blobs, **self.walk.manifests}

    @property
    def size(self) -> int:
        return sum(self.blobs.values())

    def as_dict(self) -> dict[str, Any]:
        return {"repository": self.name, "tags": self.tags,
                "manifests": len(self.walk.manifests), "blobs": len(self.walk.blobs),
                "size": self.size, "missing": list(self.walk.missing)}


@dataclass
class Usage:
    repositories: list[RepositoryUsage]

    @property
    def unique(self) -> dict[str, int]:
        """Every distinct blob (manifests included) over all the repositories."""
        merged: dict[str, int] = {}
        for repository in self.repositories:
            merged.update(repository.blobs)
        return merged

    @property
    def unique_manifests(self) -> set[str]:
        return {d for r in self.repositories for d in r.walk.manifests}

    @property
    def unique_layers(self) -> set[str]:
        """Distinct configs and layers (the blobs that are not manifests)."""
        return {d for r in self.repositories for d in r.walk.blobs}

    @property
    def total(self) -> int:
        return sum(self.unique.values())

    @property
    def sum_of_repositories(self) -> int:
        return sum(r.size for r in self.repositories)

    @property
    def shared(self) -> dict[str, int]:
        """The blobs (manifests included) that more than one repository keeps: each is in
        several repositories' sizes, and once in the total."""
        seen: set[str] = set()
        shared: dict[str, int] = {}
        for repository in self.repositories:
            for digest, size in repository.blobs.items():
                if digest in seen:
                    shared[digest] = size
                seen.add(digest)
        return shared

    def as_dict(self) -> dict[str, Any]:
        shared = self.shared
        return {"repositories": [r.as_dict() for r in self.repositories],
                "total": {"size": self.total, "manifests": len(self.unique_manifests),
                          "blobs": len(self.unique_layers),
                          # Bytes the repositories' sizes count more than once.
                          "shared": self.sum_of_repositories - self.total,
                          # The blobs behind that: in several repositories, in the
                          # total once.
                          "sharedBlobs": len(shared), "sharedSize": sum(shared.values())}}


def repository_usage(client: RegistryClient, repository: str) -> RepositoryUsage:
    walker = Walker(client, repository)
    walk = Walk()
    tags = client.tags(repository)
    for tag in tags:
        try:
            manifest = walker.manifest(tag)
        except NotFound:
            continue  # deleted since the listing
        walker.walk(manifest, walk)
    return RepositoryUsage(repository, len(tags), walk)


def usage(client: RegistryClient, repositories: list[str]) -> Usage:
    return Usage([repository_usage(client, name) for name in repositories])


# -- removal ------------------------------------------------------------------------------

@dataclass
class Removal:
    repository: str
    digests: list[str]  # what the given reference resolved to
    method: str  # "tag": only tags were deleted; "digest": manifests were deleted
    removed_tags: list[str] = field(default_factory=list)
    removed_manifests: list[str] = field(default_factory=list)
    dry_run: bool = False  # a plan: what would be removed; nothing was

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"repository": self.repository, "method": self.method,
                                  "removedTags": self.removed_tags,
                                  "removedManifests": self.removed_manifests}
        if self.dry_run:
            result["dryRun"] = True
        return result


class WouldRemoveOtherTags(ClientError):
    """Removing a tag would take other tags with it and ``force`` was not given."""

    def __init__(self, message: str, digest: str, tags: list[str]) -> None:
        super().__init__(message)
        self.digest = digest
        self.tags = tags


def tags_pointing_at(client: RegistryClient, repository: str, digest: str) -> list[str]:
    """Every tag of the repository that currently resolves to ``digest`` (a HEAD per tag)."""
    found: list[str] = []
    for tag in client.tags(repository):
        try:
            if client.resolve(repository, tag) == digest:
                found.append(tag)
        except NotFound:
            continue
    return found


def remove_digest(client: RegistryClient, repository: str, digest: str) -> Removal:
    """Delete a manifest by digest: it and every tag pointing at it go."""
    client.resolve(repository, digest)  # a clear "not found" before anything else
    tags = tags_pointing_at(client, repository, digest)
    client.delete_manifest(repository, digest)
    return Removal(repository, [digest], "digest", tags, [digest])


def remove_tag(client: RegistryClient, repository: str, tag: str, force: bool,
               deleting: Collection[str] = ()) -> Removal:
    """Delete one tag: ``DELETE`` by tag; where the registry refuses that (distribution 2.8),
    delete the manifest by digest, which removes every tag pointing at it too, so that needs
    ``force`` when other tags would go (other than those in ``deleting``, which the caller
    removes anyway)."""
    digest = client.resolve(repository, tag)
    try:
        client.delete_manifest(repository, tag)
        return Removal(repository, [digest], "tag", [tag], [])
    except Unsupported as refusal:
        along = [t for t in tags_pointing_at(client, repository, digest) if t != tag]
        others = [t for t in along if t not in deleting]
        if others and not force:
            why = ("tag deletes are not supported there, or deletes are disabled"
                   if refusal.status == 405 else "it does not support deleting tags")
            raise WouldRemoveOtherTags(
                f"{client.registry.host} refused to delete tag {tag!r} alone ({why}); "
                f"deleting it means deleting manifest {digest}, which would also remove "
                f"tag{'s' if len(others) > 1 else ''} {', '.join(others)}. Pass --force to "
                "delete them all.", digest, others) from None
    client.delete_manifest(repository, digest)
    return Removal(repository, [digest], "digest", [tag, *along], [digest])


def matching_tags(client: RegistryClient, repository: str, patterns: Sequence[str]
                  ) -> list[str]:
    """The repository's tags matching any of the glob ``patterns`` (case-sensitive, as tags
    are; ``*`` matches dots too: ``v1.*`` takes v1.0 and v1.2.3)."""
    return [tag for tag in client.tags(repository)
            if any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns)]


def plan_tag(client: RegistryClient, repository: str, tag: str) -> Removal:
    """What `remove_tag` would remove, deleting nothing."""
    digest = client.resolve(repository, tag)
    return Removal(repository, [digest], "tag", [tag], [], dry_run=True)


def plan_digest(client: RegistryClient, repository: str, digest: str) -> Removal:
    """What `remove_digest` would remove, deleting nothing."""
    client.resolve(repository, digest)
    tags = tags_pointing_at(client, repository, digest)
    return Removal(repository, [digest], "digest", tags, [digest], dry_run=True)


def _tagged_manifests(client: RegistryClient, repository: str
                      ) -> tuple[dict[str, list[str]], list[str]]:
    """Digest to tags of every tagged manifest, and the children of those that are indexes."""
    by_digest: dict[str, list[str]] = {}
    for tag in client.tags(repository):
        try:
            by_digest.setdefault(client.resolve(repository, tag), []).append(tag)
        except NotFound:
            continue
    walker = Walker(client, repository)
    children: list[str] = []
    for digest in by_digest:
        manifest = walker.manifest(digest)
        if manifest.is_index:
            children += [c.digest for c in manifest.children()]
    return by_digest, children


def plan_all(client: RegistryClient, repository: str) -> Removal:
    """What `remove_all` would remove, deleting nothing."""
    by_digest, children = _tagged_manifests(client, repository)
    manifests = list(dict.fromkeys([*by_digest, *children]))
    return Removal(repository, list(by_digest), "digest",
                   [tag for tags in by_digest.values() for tag in tags], manifests,
                   dry_run=True)


def remove_all(client: RegistryClient, repository: str) -> Removal:
    """Delete every tagged manifest of a repository (and the children of its indexes)."""
    by_digest, children = _tagged_manifests(client, repository)
    removal = Removal(repository, list(by_digest), "digest")
    for digest, tags in by_digest.items():
        try:
            client.delete_manifest(repository, digest)
        except NotFound:
            continue
        removal.removed_tags += tags
        removal.removed_manifests.append(digest)
    for digest in dict.fromkeys(children):
        if digest in removal.removed_manifests:
            continue
        try:
            client.delete_manifest(repository, digest)
        except NotFound:
            continue
        removal.removed_manifests.append(digest)
    return removal
