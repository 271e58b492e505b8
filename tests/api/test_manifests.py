"""Manifest PUT/GET/HEAD/DELETE by tag and digest, validation and limits."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    error_codes,
    make_image,
    make_index,
    push_blob,
    push_image,
)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_push_and_pull_by_tag_and_digest(client: httpx.Client, media_type: str) -> None:
    image = make_image(media_type=media_type)
    name = "manifests/roundtrip"
    response = push_image(client, name, "v1", image)
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert response.headers["Location"].endswith(f"/v2/{name}/manifests/{image.digest}")
    for reference in ("v1", image.digest):
        got = client.get(f"/v2/{name}/manifests/{reference}",
                         headers={"Accept": media_type})
        assert got.status_code == 200
        assert got.content == image.manifest  # the bytes exactly as pushed
        assert got.headers["Content-Type"] == media_type
        assert got.headers["Docker-Content-Digest"] == image.digest
        head = client.head(f"/v2/{name}/manifests/{reference}", headers={"Accept": media_type})
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(image.manifest))
        assert head.headers["Docker-Content-Digest"] == image.digest
        assert head.headers["Content-Type"] == media_type


def test_oci_manifest_needs_oci_in_accept(client: httpx.Client) -> None:
    image = make_image()
    push_image(client, "manifests/accept", "v1", image)
    refused = client.get("/v2/manifests/accept/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert refused.status_code == 404
    assert error_codes(refused) == ["MANIFEST_UNKNOWN"]
    for accept in ("", "*/*", f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"):
        response = client.get("/v2/manifests/accept/manifests/v1", headers={"Accept": accept})
        assert response.status_code == 200, accept


def test_content_type_from_document_when_header_is_generic(client: httpx.Client) -> None:
    image = make_image()
    for blob in (image.config, *image.layers):
        push_blob(client, "manifests/generic", blob)
    response = client.put("/v2/manifests/generic/manifests/v1", content=image.manifest,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 201
    got = client.get("/v2/manifests/generic/manifests/v1")
    assert got.headers["Content-Type"] == OCI_MANIFEST


def test_missing_blobs_are_refused(client: httpx.Client) -> None:
    image = make_image()
    push_blob(client, "manifests/missing", image.config)  # layers never pushed
    response = client.put("/v2/manifests/missing/manifests/v1", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.get("/v2/manifests/missing/manifests/v1").status_code == 404


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"schemaVersion": 1}', b'{"schemaVersion": 2}',
    b'{"schemaVersion": 2, "config": {}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1},'
    b' "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "size": -1, "digest":'
    b' "sha256:' + b"a" * 64 + b'"}, "layers": []}',
    ("[" * 10000 + "]" * 10000).encode(),
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}',
])
def test_invalid_manifests(client: httpx.Client, body: bytes) -> None:
    response = client.put("/v2/manifests/invalid/manifests/v1", content=body,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


def test_unknown_media_type_and_mismatch_are_invalid(client: httpx.Client) -> None:
    image = make_image()
    for blob in (image.config, *image.layers):
        push_blob(client, "manifests/types", blob)
    for content_type in ("application/vnd.example.unknown+json", DOCKER_MANIFEST):
        response = client.put("/v2/manifests/types/manifests/v1", content=image.manifest,
                              headers={"Content-Type": content_type})
        assert response.status_code == 400, content_type
        assert error_codes(response) == ["MANIFEST_INVALID"]


def test_oversize_manifest_is_413(client: httpx.Client) -> None:
    image = make_image(extra={"annotations": {"padding": "x" * (4 * 1024 * 1024)}})
    for blob in (image.config, *image.layers):
        push_blob(client, "manifests/big", blob)
    response = client.put("/v2/manifests/big/manifests/v1", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 413
    assert error_codes(response) == ["SIZE_INVALID"]


def test_put_by_digest_checks_the_digest(client: httpx.Client) -> None:
    image = make_image()
    for blob in (image.config, *image.layers):
        push_blob(client, "manifests/bydigest", blob)
    wrong = digest_of(b"something else")
    response = client.put(f"/v2/manifests/bydigest/manifests/{wrong}", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    response = client.put(f"/v2/manifests/bydigest/manifests/{image.digest}",
                          content=image.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201
    tags = client.get("/v2/manifests/bydigest/tags/list").json()
    assert tags["tags"] == []


@pytest.mark.parametrize("index_type,child_type", [(OCI_INDEX, OCI_MANIFEST),
                                                   (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_needs_its_children(client: httpx.Client, index_type: str, child_type: str
                                  ) -> None:
    name = "manifests/index"
    children = [make_image(media_type=child_type) for _ in range(2)]
    index = make_index(children, media_type=index_type)
    refused = client.put(f"/v2/{name}/manifests/multi", content=index,
                         headers={"Content-Type": index_type})
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    for child in children:
        push_image(client, name, child.digest, child)
    response = client.put(f"/v2/{name}/manifests/multi", content=index,
                          headers={"Content-Type": index_type})
    assert response.status_code == 201, response.text
    got = client.get(f"/v2/{name}/manifests/multi", headers={"Accept": index_type})
    assert got.content == index
    assert got.headers["Content-Type"] == index_type


def test_unknown_manifest(client: httpx.Client) -> None:
    push_image(client, "manifests/unknown", "exists", make_image())
    for reference in ("nope", digest_of(b"nope")):
        response = client.get(f"/v2/manifests/unknown/manifests/{reference}")
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]
        assert client.head(f"/v2/manifests/unknown/manifests/{reference}").status_code == 404


def test_invalid_references(client: httpx.Client) -> None:
    for reference in ("-bad", "a" * 129, "sha256:short"):
        response = client.get(f"/v2/manifests/unknown/manifests/{reference}")
        assert response.status_code in (400, 404), reference
        assert error_codes(response)[0] in ("MANIFEST_UNKNOWN", "DIGEST_INVALID", "TAG_INVALID")
    response = client.put("/v2/manifests/unknown/manifests/-bad", content=b"{}")
    assert response.status_code in (400, 404)


def test_delete_by_tag_removes_only_that_tag(client: httpx.Client) -> None:
    name = "manifests/deltag"
    image = make_image()
    push_image(client, name, "one", image)
    push_image(client, name, "two", image)
    assert client.delete(f"/v2/{name}/manifests/one").status_code == 202
    assert client.get(f"/v2/{name}/manifests/one").status_code == 404
    assert client.get(f"/v2/{name}/manifests/two").status_code == 200
    assert client.get(f"/v2/{name}/manifests/{image.digest}").status_code == 200
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["two"]
    again = client.delete(f"/v2/{name}/manifests/one")
    assert again.status_code == 404
    assert error_codes(again) == ["MANIFEST_UNKNOWN"]


def test_delete_by_digest_removes_revision_and_its_tags(client: httpx.Client) -> None:
    name = "manifests/deldigest"
    image, other = make_image(), make_image()
    push_image(client, name, "a", image)
    push_image(client, name, "b", image)
    push_image(client, name, "c", other)
    assert client.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
    assert client.get(f"/v2/{name}/manifests/{image.digest}").status_code == 404
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["c"]
    assert client.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 404


def test_tag_that_looks_like_a_digest_is_a_plain_tag(client: httpx.Client) -> None:
    image = make_image()
    tag = "sha256-" + "a" * 64
    push_image(client, "manifests/sigtag", tag, image)
    got = client.get(f"/v2/manifests/sigtag/manifests/{tag}")
    assert got.status_code == 200 and got.content == image.manifest
    assert client.get("/v2/manifests/sigtag/tags/list").json()["tags"] == [tag]


def test_retagging_moves_the_tag(client: httpx.Client) -> None:
    first, second = make_image(), make_image()
    push_image(client, "manifests/retag", "latest", first)
    push_image(client, "manifests/retag", "latest", second)
    got = client.get("/v2/manifests/retag/manifests/latest")
    assert got.headers["Docker-Content-Digest"] == second.digest
    # The old revision stays reachable by digest (as in distribution).
    assert client.get(f"/v2/manifests/retag/manifests/{first.digest}").status_code == 200


def test_manifest_body_json_is_preserved_byte_for_byte(client: httpx.Client) -> None:
    image = make_image()
    odd = json.loads(image.manifest)
    body = (json.dumps(odd, indent=7, sort_keys=True) + "\n\n").encode()
    for blob in (image.config, *image.layers):
        push_blob(client, "manifests/bytes", blob)
    response = client.put("/v2/manifests/bytes/manifests/v1", content=body,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert client.get("/v2/manifests/bytes/manifests/v1").content == body


def test_a_reference_no_manifest_can_have_is_unknown_but_cannot_be_pushed(
        client: httpx.Client) -> None:
    """As the OCI conformance suite (v1.1.1, `.INVALID_MANIFEST_NAME`) and distribution
    have it: GET and HEAD answer 404 MANIFEST_UNKNOWN, a PUT 400 TAG_INVALID."""
    image = make_image()
    push_image(client, "manifests/invalid-name", "v1", image)
    path = "/v2/manifests/invalid-name/manifests/.INVALID_MANIFEST_NAME"
    got = client.get(path)
    assert got.status_code == 404 and error_codes(got) == ["MANIFEST_UNKNOWN"]
    assert client.head(path).status_code == 404
    pushed = client.put(path, content=image.manifest, headers={"Content-Type": image.media_type})
    assert pushed.status_code == 400 and error_codes(pushed) == ["TAG_INVALID"]
