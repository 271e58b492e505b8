"""distribution's object layout for many repositories, generated directly (as distribution
2.8 writes it after pushes), for filling a bucket faster than pushes would."""

from __future__ import annotations

import hashlib
import json
import os

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def blob_key(root: str, text: str) -> str:
    hex_digest = text.split(":", 1)[1]
    return f"{root}/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


def layout_of(root: str, repositories: int, tags: int) -> dict[str, bytes]:
    """Every object distribution would have written for these repositories."""
    objects: dict[str, bytes] = {}
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    objects[blob_key(root, digest(config))] = config
    for number in range(repositories):
        name = f"team{number % 20}/app{number}"
        layer = os.urandom(512)
        objects[blob_key(root, digest(layer))] = layer
        repository = f"{root}/repositories/{name}"
        for text in (digest(config), digest(layer)):
            objects[f"{repository}/_layers/sha256/{text[7:]}/link"] = text.encode()
        for tag_number in range(tags):
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest(layer), "size": len(layer)}],
                "annotations": {"tag": str(tag_number)}}).encode()
            text = digest(manifest)
            objects[blob_key(root, text)] = manifest
            manifests = f"{repository}/_manifests"
            objects[f"{manifests}/revisions/sha256/{text[7:]}/link"] = text.encode()
            tag = f"{manifests}/tags/v{tag_number}"
            objects[f"{tag}/current/link"] = text.encode()
            objects[f"{tag}/index/sha256/{text[7:]}/link"] = text.encode()
    return objects
