"""The referrers API and the OCI-Subject header."""

from __future__ import annotations

import json

import httpx

from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_image,
)

EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


def push_artifact(client: httpx.Client, name: str, subject: bytes, artifact_type: str,
                  annotations: dict[str, str] | None = None) -> bytes:
    push_blob(client, name, EMPTY)
    payload = json.dumps({"signature": artifact_type}).encode()
    push_blob(client, name, payload)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_TYPE, EMPTY),
        "layers": [descriptor("application/octet-stream", payload)],
        "subject": descriptor(OCI_MANIFEST, subject),
        "annotations": annotations or {"org.example.kind": artifact_type},
    }
    body = json.dumps(document).encode()
    response = client.put(f"/v2/{name}/manifests/{digest_of(body)}", content=body,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == digest_of(subject)
    return body


def test_referrers_listed_and_filtered(client: httpx.Client) -> None:
    name = "referrers/image"
    image = make_image()
    push_image(client, name, "v1", image)
    signature = push_artifact(client, name, image.manifest, "application/vnd.example.sig")
    sbom = push_artifact(client, name, image.manifest, "application/vnd.example.sbom")
    response = client.get(f"/v2/{name}/referrers/{image.digest}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    listed = {item["digest"]: item for item in index["manifests"]}
    assert set(listed) == {digest_of(signature), digest_of(sbom)}
    entry = listed[digest_of(signature)]
    assert entry["artifactType"] == "application/vnd.example.sig"
    assert entry["size"] == len(signature)
    assert entry["mediaType"] == OCI_MANIFEST
    assert entry["annotations"] == {"org.example.kind": "application/vnd.example.sig"}
    filtered = client.get(f"/v2/{name}/referrers/{image.digest}",
                          params={"artifactType": "application/vnd.example.sbom"})
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [item["digest"] for item in filtered.json()["manifests"]] == [digest_of(sbom)]


def test_subject_need_not_exist_yet(client: httpx.Client) -> None:
    name = "referrers/dangling"
    absent = make_image()
    body = push_artifact(client, name, absent.manifest, "application/vnd.example.sig")
    listed = client.get(f"/v2/{name}/referrers/{absent.digest}").json()["manifests"]
    assert [item["digest"] for item in listed] == [digest_of(body)]


def test_referrers_of_unknown_digest_is_empty_index(client: httpx.Client) -> None:
    for name in ("referrers/image", "referrers/neverpushed"):
        response = client.get(f"/v2/{name}/referrers/{digest_of(b'unknown')}")
        assert response.status_code == 200
        assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_invalid_digest(client: httpx.Client) -> None:
    response = client.get("/v2/referrers/image/referrers/sha256:nothex")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_deleted_referrer_disappears(client: httpx.Client) -> None:
    name = "referrers/deleting"
    image = make_image()
    push_image(client, name, "v1", image)
    body = push_artifact(client, name, image.manifest, "application/vnd.example.sig")
    assert client.delete(f"/v2/{name}/manifests/{digest_of(body)}").status_code == 202
    assert client.get(f"/v2/{name}/referrers/{image.digest}").json()["manifests"] == []
