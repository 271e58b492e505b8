"""Tag lists and the catalog: sorting, pagination and Link headers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.oci import error_codes, make_image, push_image
from tests.support.server import RunningRegistry, Storage, run_registry


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


def test_unreadable_page_size_is_ignored_as_distribution_does(client: httpx.Client) -> None:
    push_image(client, "listing/badn", "v1", make_image())
    for path in ("/v2/_catalog", "/v2/listing/badn/tags/list"):
        whole = client.get(path)
        for value in ("-1", "abc", "1.5"):
            response = client.get(path, params={"n": value})
            assert response.status_code == 200, (path, value)
            assert response.content == whole.content
            assert "Link" not in response.headers


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


def _listings_seen(registry: RunningRegistry, path: str, key: str, times: int = 12
                   ) -> list[list[str]]:
    """The same listing fetched over fresh connections, so that every worker answers."""
    seen = []
    for _ in range(times):
        with registry.client() as client:
            response = client.get(path)
            assert response.status_code == 200
            seen.append(response.json()[key])
    return seen


def test_listings_follow_changes_in_every_worker(tmp_path: Path, storage: Storage) -> None:
    """Workers keep encoded tag lists and catalog pages; a change made through any worker
    shows in the next listing of each."""
    image = make_image()
    config = {"http": {"workers": 2}}
    with run_registry(tmp_path, config=config, storage=storage) as registry:
        with registry.client() as client:
            for tag in ("one", "two"):
                push_image(client, "cached/app", tag, image)
            push_image(client, "cached/other", "latest", image)
        tags_path = "/v2/cached/app/tags/list"
        assert _listings_seen(registry, tags_path, "tags") == [["one", "two"]] * 12
        with registry.client() as client:
            push_image(client, "cached/app", "three", image)
        assert _listings_seen(registry, tags_path, "tags") == [["one", "three", "two"]] * 12
        with registry.client() as client:
            assert client.delete("/v2/cached/app/manifests/two").status_code == 202
        assert _listings_seen(registry, tags_path, "tags") == [["one", "three"]] * 12

        assert _listings_seen(registry, "/v2/_catalog", "repositories") == \
            [["cached/app", "cached/other"]] * 12


def test_catalogs_follow_the_garbage_collector_in_every_worker(tmp_path: Path,
                                                               storage: Storage) -> None:
    """A change another process makes (the garbage collector) shows in the next catalog
    page of every worker."""
    image = make_image()
    with run_registry(tmp_path, config={"http": {"workers": 2}}, storage=storage) as registry:
        with registry.client() as client:
            push_image(client, "cached/app", "one", image)
            push_image(client, "cached/other", "latest", image)
        assert _listings_seen(registry, "/v2/_catalog", "repositories") == \
            [["cached/app", "cached/other"]] * 12
        with registry.client() as client:
            deleted = client.delete(f"/v2/cached/other/manifests/{image.digest}")
            assert deleted.status_code == 202
        # The collector, a process of its own, removes the now empty repository.
        collected = subprocess.run(
            [sys.executable, "-m", "dockyard", "garbage-collect", "--grace-period", "0",
             str(registry.config_path)], capture_output=True, text=True, timeout=120)
        assert collected.returncode == 0, collected.stderr
        assert "1 empty repositories removed" in collected.stdout
        assert _listings_seen(registry, "/v2/_catalog", "repositories") == [["cached/app"]] * 12
