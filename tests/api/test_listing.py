"""Tag lists and the catalog: sorting, pagination and Link headers."""

from __future__ import annotations

import httpx

from tests.support.oci import error_codes, make_image, push_image
from tests.support.server import RunningRegistry


def test_tags_sorted_and_paginated(client: httpx.Client) -> None:
    image = make_image()
    tags = ["b", "a", "c10", "c2", "latest", "1.0"]
    for tag in tags:
        push_image(client, "listing/tags", tag, image)
    full = client.get("/v2/listing/tags/tags/list")
    assert full.status_code == 200
    assert full.json() == {"name": "listing/tags", "tags": sorted(tags)}
    assert "Link" not in full.headers
    page = client.get("/v2/listing/tags/tags/list", params={"n": 2})
    assert page.json()["tags"] == sorted(tags)[:2]
    link = page.headers["Link"]
    assert link.startswith("</v2/listing/tags/tags/list?") and link.endswith('>; rel="next"')
    collected = list(page.json()["tags"])
    while "Link" in page.headers:
        next_url = page.headers["Link"].split(">", 1)[0].lstrip("<")
        page = client.get(next_url)
        collected.extend(page.json()["tags"])
    assert collected == sorted(tags)
    after = client.get("/v2/listing/tags/tags/list", params={"last": "b", "n": 100})
    assert after.json()["tags"] == [tag for tag in sorted(tags) if tag > "b"]
    assert client.get("/v2/listing/tags/tags/list", params={"n": 0}).json()["tags"] == []


def test_tags_of_unknown_repository(client: httpx.Client) -> None:
    response = client.get("/v2/listing/nothing/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_tags_empty_list_is_not_null(client: httpx.Client) -> None:
    image = make_image()
    push_image(client, "listing/emptied", "only", image)
    client.delete(f"/v2/listing/emptied/manifests/{image.digest}")
    response = client.get("/v2/listing/emptied/tags/list")
    assert response.status_code == 200
    assert response.json()["tags"] == []


def test_bad_pagination(client: httpx.Client) -> None:
    for value in ("-1", "abc", "1.5"):
        response = client.get("/v2/_catalog", params={"n": value})
        assert response.status_code == 400
        assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


def test_catalog_sorted_and_paginated(fresh_registry: RunningRegistry) -> None:
    names = ["zeta", "alpha", "library/hello-world", "a/b/c", "alpha-2", "m.n_o"]
    image = make_image()
    with fresh_registry.client() as client:
        for name in names:
            push_image(client, name, "latest", image)
        full = client.get("/v2/_catalog").json()["repositories"]
        assert full == sorted(names)
        collected: list[str] = []
        url = "/v2/_catalog?n=4"
        while url:
            page = client.get(url)
            assert page.status_code == 200
            collected.extend(page.json()["repositories"])
            url = page.headers.get("Link", "").split(">", 1)[0].lstrip("<")
        assert collected == sorted(names)
        assert client.get("/v2/_catalog", params={"last": "alpha-2"}).json()["repositories"] \
            == sorted(names)[3:]
