"""The referrers API and the OCI-Subject header."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.memory import reset_peak_rss, server_peak_rss_kib, server_rss_kib
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
from tests.support.server import Storage, run_registry

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
    # A page starts after a digest; anything else there is refused the same way.
    response = client.get(f"/v2/referrers/image/referrers/{digest_of(b'x')}",
                          params={"last": "x" * 10_000})
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_deleted_referrer_disappears(client: httpx.Client) -> None:
    name = "referrers/deleting"
    image = make_image()
    push_image(client, name, "v1", image)
    body = push_artifact(client, name, image.manifest, "application/vnd.example.sig")
    assert client.delete(f"/v2/{name}/manifests/{digest_of(body)}").status_code == 202
    assert client.get(f"/v2/{name}/referrers/{image.digest}").json()["manifests"] == []


PAGE_BUDGET = 4 * 1024 * 1024  # what one page of referrers may take, encoded


def referrer_pages(client: httpx.Client, url: str, params: dict[str, str] | None = None
                   ) -> list[httpx.Response]:
    """Every page of a referrers listing, following Link headers as oras and cosign do."""
    pages = [client.get(url, params=params)]
    while "Link" in pages[-1].headers:
        assert len(pages) < 100, "pagination does not end"
        link = pages[-1].headers["Link"]
        assert link.startswith("<") and link.endswith('>; rel="next"'), link
        pages.append(client.get(link[1:].split(">", 1)[0]))
    for page in pages:
        assert page.status_code == 200, page.text
        assert page.headers["Content-Type"] == OCI_INDEX
        assert page.json()["mediaType"] == OCI_INDEX
    return pages


def test_referrers_are_paginated_by_size(client: httpx.Client) -> None:
    name = "referrers/large"
    image = make_image()
    push_image(client, name, "v1", image)
    kinds = ["application/vnd.example.sig", "application/vnd.example.sbom"] * 3
    annotations = [{"org.example.number": str(number), "org.example.padding": "p" * 1_500_000}
                   for number in range(len(kinds))]
    pushed = {digest_of(push_artifact(client, name, image.manifest, kind, annotation)): kind
              for kind, annotation in zip(kinds, annotations, strict=True)}
    pages = referrer_pages(client, f"/v2/{name}/referrers/{image.digest}")
    assert len(pages) > 1
    listed = [item for page in pages for item in page.json()["manifests"]]
    assert sorted(item["digest"] for item in listed) == sorted(pushed)
    for page in pages:
        assert len(page.content) <= PAGE_BUDGET
        assert all(item["annotations"] in annotations for item in page.json()["manifests"])
    # Filtering holds on every page, and the Link keeps the filter.
    sboms = referrer_pages(client, f"/v2/{name}/referrers/{image.digest}",
                           {"artifactType": "application/vnd.example.sbom"})
    assert all(page.headers["OCI-Filters-Applied"] == "artifactType" for page in sboms)
    assert sorted(item["digest"] for page in sboms for item in page.json()["manifests"]) \
        == sorted(digest for digest, kind in pushed.items()
                  if kind == "application/vnd.example.sbom")


def test_a_referrer_larger_than_a_page_is_served_alone(tmp_path: Path, storage: Storage
                                                       ) -> None:
    config = {"validation": {"manifests": {"maxsize": 3 * PAGE_BUDGET}}}
    with run_registry(tmp_path, config=config, storage=storage) as registry, \
            registry.client() as client:
        name = "referrers/huge"
        image = make_image()
        push_image(client, name, "v1", image)
        huge = {"org.example.padding": "h" * (PAGE_BUDGET + 1024)}
        pushed = {digest_of(push_artifact(client, name, image.manifest, kind, annotations))
                  for kind, annotations in (("application/vnd.example.sig", huge),
                                            ("application/vnd.example.sbom", None),
                                            ("application/vnd.example.sbom", huge))}
        pages = referrer_pages(client, f"/v2/{name}/referrers/{image.digest}")
        listed = [item for page in pages for item in page.json()["manifests"]]
        assert sorted(item["digest"] for item in listed) == sorted(pushed)
        for page in pages:
            entries = page.json()["manifests"]
            assert len(page.content) <= PAGE_BUDGET or len(entries) == 1
        assert sum(item.get("annotations") == huge for item in listed) == 2


@pytest.mark.filesystem_only(reason="the storage plays no part in what "
                             "is measured: referrers are listed from the index")
def test_referrers_with_large_annotations_keep_memory_flat(tmp_path: Path, storage: Storage
                                                            ) -> None:
    """25 referrers of 4 MB each, listed by 8 clients at once: the server sends them page by
    page instead of building a 100 MB index per request."""
    with run_registry(tmp_path, config={"http": {"workers": 1}}, storage=storage) as registry, \
            registry.client() as client:
        name = "referrers/heavy"
        image = make_image()
        push_image(client, name, "v1", image)
        pushed = {digest_of(push_artifact(
            client, name, image.manifest, "application/vnd.example.sig",
            {"org.example.number": str(number), "org.example.padding": "a" * 4_000_000}))
            for number in range(25)}
        assert len(pushed) == 25
        url = f"/v2/{name}/referrers/{image.digest}"
        assert client.get(url).status_code == 200  # warm up
        pid = registry.process.pid
        before = server_rss_kib(pid)
        reset_peak_rss(pid)

        def list_all(_: int) -> set[str]:
            with registry.client() as own:
                return {item["digest"] for page in referrer_pages(own, url)
                        for item in page.json()["manifests"]}

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(list_all, range(8)))
        growth = server_peak_rss_kib(pid) - before
        assert results == [pushed] * 8
        assert growth < 160 * 1024, f"server peak grew by {growth} KiB"
