"""The referrers of a manifest: manifests in the repository whose `subject` names it."""

from __future__ import annotations

from typing import Any

from dockyard.registry import mediatypes
from dockyard.registry.manifests import RepositoryManifests
from dockyard.registry.reference import Digest


async def list_referrers(
    manifests: RepositoryManifests, subject: Digest, artifact_type: str | None = None
) -> dict[str, Any]:
    """An OCI image index listing the referrers, filtered by artifact type if given."""
    descriptors: list[dict[str, Any]] = []
    for digest in await manifests.revisions():
        described = await manifests.describe(digest)
        if described is None:
            continue
        media_type, manifest, size = described
        if manifest is None or manifest.subject is None or manifest.subject.digest != subject:
            continue
        if artifact_type is not None and manifest.artifact_type != artifact_type:
            continue
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": str(digest), "size": size}
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        descriptors.append(descriptor)
    descriptors.sort(key=lambda item: item["digest"])
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": descriptors}
