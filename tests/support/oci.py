"""Building blobs and manifests, and pushing them over plain HTTP, for API tests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_blob(size: int = 1024) -> bytes:
    return os.urandom(size)


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    """Push in one PUT after a POST (what every registry supports); returns the digest."""
    digest = digest_of(data)
    started = client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    response = client.put(f"{location}{separator}digest={digest}", content=data,
                          headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return digest


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_image(layer_count: int = 2, media_type: str = OCI_MANIFEST,
               extra: dict[str, Any] | None = None, layer_size: int = 2048) -> Image:
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []},
                         "nonce": os.urandom(8).hex()}).encode()
    layers = [random_blob(layer_size) for _ in range(layer_count)]
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers],
        **(extra or {}),
    }
    return Image(config, layers, json.dumps(document, indent=2).encode(), media_type)


def push_image(client: httpx.Client, name: str, reference: str, image: Image) -> httpx.Response:
    for blob in (image.config, *image.layers):
        push_blob(client, name, blob)
    response = client.put(f"/v2/{name}/manifests/{reference}", content=image.manifest,
                          headers={"Content-Type": image.media_type})
    assert response.status_code == 201, response.text
    return response


def make_index(children: list[Image], media_type: str = OCI_INDEX,
               extra: dict[str, Any] | None = None) -> bytes:
    platforms = [("amd64", "linux"), ("arm64", "linux"), ("s390x", "linux"), ("ppc64le", "linux")]
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(child.media_type, child.manifest,
                       platform={"architecture": arch, "os": os_name})
            for child, (arch, os_name) in zip(children, platforms, strict=False)
        ],
        **(extra or {}),
    }
    return json.dumps(document).encode()


def error_codes(response: httpx.Response) -> list[str]:
    """The spec error codes in a response body (asserting the body has the spec's shape)."""
    body = response.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert {"code", "message", "detail"} <= set(error), error
    return [error["code"] for error in body["errors"]]
