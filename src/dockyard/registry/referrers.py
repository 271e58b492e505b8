"""The referrers of a manifest: manifests in the repository whose `subject` names it."""

from __future__ import annotations

from typing import Any

from dockyard.index.sqlite import SQLiteIndex
from dockyard.registry import mediatypes
from dockyard.registry.reference import Digest


def list_referrers(
    index: SQLiteIndex, name: str, subject: Digest, artifact_type: str | None = None
) -> dict[str, Any]:
    """An OCI image index listing the referrers, filtered by artifact type if given."""
    descriptors: list[dict[str, Any]] = []
    for record in index.referrers(name, str(subject), artifact_type):
        descriptor: dict[str, Any] = {"mediaType": record.media_type, "digest": record.digest,
                                      "size": record.size}
        if record.artifact_type:
            descriptor["artifactType"] = record.artifact_type
        if record.annotations:
            descriptor["annotations"] = record.annotations
        descriptors.append(descriptor)
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": descriptors}
