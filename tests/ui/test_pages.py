"""The web UI's pages and forms over HTTP, on a running registry without auth.

What a browser without JavaScript sees: every page server-rendered, sizes and dates
readable, what users pushed shown as text (never markup), and every change refused
without the session's CSRF token.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockyard.config import load_config
from tests.support.images import Image, build_image, build_index, sample_image
from tests.support.oci import descriptor, digest_of, push_blob
from tests.support.server import RunningRegistry, run_registry
from tests.ui.support import Visitor, push, push_index, text_of

UI = {"ui": {"enabled": True}}
XSS_LABEL = "<script>window.__xss=1</script>"
XSS_ANNOTATION = '"><img src=x onerror=alert(1)>'
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass
class Store:
    registry: RunningRegistry
    app_v1: Image
    app_v2: Image
    signature: str  # the digest of a referrer of app:v1


def signature_of(client: httpx.Client, name: str, subject: Image) -> str:
    """Push a signature-like artifact whose subject is `subject`; its digest."""
    empty = b"{}"
    payload = b'{"critical":{"image":{"docker-manifest-digest":"' + \
        subject.manifest.digest.encode() + b'"}}}'
    for blob in (empty, payload):
        push_blob(client, name, blob)
    document = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": SIGNATURE_TYPE,
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor("application/vnd.dev.cosign.simplesigning.v1+json", payload)],
        "subject": {"mediaType": subject.manifest.media_type,
                    "digest": subject.manifest.digest, "size": len(subject.manifest.data)},
        "annotations": {"org.opencontainers.image.created": "2026-01-02T03:04:05Z"},
    }
    data = json.dumps(document).encode()
    digest = digest_of(data)
    response = client.put(f"/v2/{name}/manifests/{digest}", content=data,
                          headers={"Content-Type": document["mediaType"]})
    assert response.status_code == 201, response.text
    return digest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("ui")
    with run_registry(tmp, config=UI) as registry, registry.client() as client:
        app_v1, app_v2 = sample_image("app"), sample_image("app-two")
        push(client, "team/app", "v1", app_v1)
        push(client, "team/app", "v2", app_v2)
        push(client, "team/app", "also-v1", app_v1)
        push(client, "team/other_x", "1", sample_image("other"))
        push(client, "teamother", "1", sample_image("big", layers=6))
        push_index(client, "multi", "latest", build_index(
            [sample_image("multi", "amd64"), sample_image("multi", "arm64")]))
        evil = build_image([{"a.txt": b"a"}], labels={"note": XSS_LABEL},
                           annotations={"org.example.note": XSS_ANNOTATION})
        push(client, "evil", "latest", evil)
        yield Store(registry, app_v1, app_v2, signature_of(client, "team/app", app_v1))


def test_the_ui_is_on_without_a_config_file_and_off_with_one(tmp_path: Path) -> None:
    """`./serve` (no config) shows the UI; a registry:2 config.yml keeps dockyard a plain
    registry unless it turns the UI on (GET / is then distribution's empty 200)."""
    assert load_config(None, environ={}).ui.enabled
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: {inmemory: {}}\n")
    assert not load_config(config, environ={}).ui.enabled
    assert load_config(config, environ={"REGISTRY_UI_ENABLED": "true"}).ui.enabled
    with run_registry(tmp_path) as registry, registry.client() as client:
        root = client.get("/")
        assert (root.status_code, root.content) == (200, b"")
        assert client.get("/ui/").status_code == 404


def test_root_leads_to_the_ui_and_pages_carry_a_strict_policy(store: Store) -> None:
    with store.registry.client() as client:
        root = client.get("/")
        assert root.status_code == 303
        assert root.headers["location"] == "/ui/"
        assert client.get("/ui").headers["location"] == "/ui/"
        page = client.get("/ui/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Path=/ui/" in cookie
    # The registry's own headers stay on every answer.
    assert page.headers["docker-distribution-api-version"] == "registry/2.0"
    static = httpx.get(store.registry.url + "/ui/static/ui.css")
    assert static.status_code == 200 and static.headers["content-type"].startswith("text/css")
    assert httpx.get(store.registry.url + "/ui/static/../app.py").status_code == 404
    assert httpx.get(store.registry.url + "/ui/static/nothing.js").status_code == 404


def test_repositories_are_found_by_part_of_their_name_and_sorted(store: Store) -> None:
    with Visitor(store.registry.url) as visitor:
        every = text_of(visitor.page("/"))
        for name in ("team/app", "team/other_x", "teamother", "multi", "evil"):
            assert name in every
        assert "5 in all" in every
        found = text_of(visitor.page("/", params={"q": "TEAM/"}))
        assert "team/app" in found and "team/other_x" in found and "teamother" not in found
        # `_` is an underscore, not "any character" (the index searches with LIKE).
        underscore = text_of(visitor.page("/", params={"q": "r_x"}))
        assert "team/other_x" in underscore and "1 in all" in underscore
        assert "No repository has “zzz” in its name." in text_of(
            visitor.page("/", params={"q": "zzz"}))
        by_size = rows(visitor.page("/", params={"sort": "size", "order": "desc"}))
        assert [size for _, size in by_size] == sorted((size for _, size in by_size),
                                                       reverse=True)
        by_name_descending = rows(visitor.page("/", params={"sort": "name", "order": "desc"}))
        assert [name for name, _ in by_name_descending] == sorted(
            (name for name, _ in by_size), reverse=True)


_ROW = re.compile(r'<td><a href="/ui/r/([^"]+)">.*?title="([\d,]+) bytes"', re.DOTALL)


def rows(page: str) -> list[tuple[str, int]]:
    """(name, size in bytes) of each row of a repositories page, in order."""
    return [(name, int(size.replace(",", ""))) for name, size in _ROW.findall(page)]


def test_a_repository_page_lists_its_tags_with_sizes_and_pull_commands(store: Store) -> None:
    with Visitor(store.registry.url) as visitor:
        page = visitor.page("/r/team/app")
    text = text_of(page)
    assert "3 tags" in text
    for tag in ("v1", "v2", "also-v1"):
        assert f'href="/ui/r/team/app/-/image/{tag}"' in page
    assert store.app_v1.manifest.digest[:19] in text  # sha256: and 12 hex digits
    host = store.registry.host
    assert f'data-copy="docker pull {host}/team/app:v1"' in page
    assert f'data-copy="podman pull {host}/team/app:v2"' in page
    # Created comes from the image config (2024-01-01 in these test images).
    assert 'title="2024-01-01 00:00:00 UTC"' in page
    # v1's size counts its manifest, config, layers and signature, each once.
    v1 = store.app_v1
    expected = len(v1.manifest.data) + sum(len(blob.data) for blob in v1.blobs)
    assert expected > 1000


def test_an_index_shows_its_platforms(store: Store) -> None:
    with Visitor(store.registry.url) as visitor:
        listing = text_of(visitor.page("/r/multi"))
        assert "linux/amd64, linux/arm64" in listing
        page = visitor.page("/r/multi/-/image/latest")
    assert "Platforms" in page
    assert page.count('href="/ui/r/multi/-/image/sha256:') >= 2


def test_an_image_page_shows_config_layers_referrers_and_the_manifest(store: Store) -> None:
    image = store.app_v1
    with Visitor(store.registry.url) as visitor:
        page = visitor.page("/r/team/app/-/image/v1")
        by_digest = visitor.page(f"/r/team/app/-/image/{image.manifest.digest}")
        text = text_of(page)
        assert 'href="/ui/r/team/app/-/image/also-v1"' in page  # its other tag
        assert "org.example.name" in text and "app" in text  # a label
        assert '["/bin/true"]' in text  # the command
        for number in range(3):
            assert f"dockyard test layer {number}" in text  # each layer's history step
        for layer in image.layers:
            assert f'/ui/r/team/app/-/blob/{layer.compressed.digest}"' in page
        assert SIGNATURE_TYPE in text
        assert f'href="/ui/r/team/app/-/image/{store.signature}"' in page
        assert "2026-01-02T03:04:05Z" in text
        # The manifest as JSON, each digest linked to its blob.
        assert f'<a href="/ui/r/team/app/-/blob/{image.config.digest}">' in page
        assert "schemaVersion" in text
        assert "Tags v1" in text_of(by_digest) or "also-v1" in text_of(by_digest)
        # A layer downloads as what was pushed.
        layer = image.layers[0].compressed
        download = visitor.get(f"/r/team/app/-/blob/{layer.digest}")
        assert download.status_code == 200
        assert download.content == layer.data
        assert download.headers["content-disposition"].startswith("attachment;")
        # The signature's own page says what it refers to.
        signature = text_of(visitor.page(f"/r/team/app/-/image/{store.signature}"))
        assert "Refers to" in signature


def test_what_users_pushed_is_shown_as_text(store: Store) -> None:
    """Labels and annotations are the pusher's to choose: escaped everywhere."""
    with Visitor(store.registry.url) as visitor:
        page = visitor.page("/r/evil/-/image/latest")
    assert XSS_LABEL not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert XSS_LABEL in text_of(page) and XSS_ANNOTATION in text_of(page)


def test_missing_things_are_pages_not_tracebacks(store: Store) -> None:
    with Visitor(store.registry.url) as visitor:
        assert "no such page" in visitor.page("/nowhere", 404).lower()
        assert "repository" in text_of(visitor.page("/r/nothing/here", 404)).lower()
        visitor.page("/r/team/app/-/image/nope", 404)
        visitor.page("/r/team/app/-/image/sha256:zz", 400)
        visitor.page("/r/Bad..Name", 400)
        visitor.page("/r/team/app/-/blob/sha256:" + "0" * 64, 404)
        assert visitor.post("/r/team/app/-/tag/v1/delete").status_code == 403
        wrong = visitor.client.put("/ui/r/team/app")
        assert wrong.status_code == 405


def test_changes_need_the_session_csrf_token(store: Store) -> None:
    """A form from another site (no token, another session's token, another Origin) is
    refused and changes nothing; our own form works."""
    with store.registry.client() as client:
        push(client, "scratch/csrf", "keep", sample_image("csrf"))
    with Visitor(store.registry.url) as visitor, Visitor(store.registry.url) as other:
        token = visitor.csrf("/r/scratch/csrf")
        foreign = other.csrf("/r/scratch/csrf")
        path = "/r/scratch/csrf/-/tag/keep/delete"
        assert visitor.post(path).status_code == 403
        assert visitor.post(path, csrf=foreign).status_code == 403
        assert visitor.post(path, csrf=token,
                            headers={"Origin": "https://evil.example"}).status_code == 403
        assert "keep" in text_of(visitor.page("/r/scratch/csrf"))
        done = visitor.post(path, csrf=token, headers={"Origin": store.registry.url})
        assert done.status_code == 303
        assert done.headers["location"] == "/ui/r/scratch/csrf"
    with store.registry.client() as client:
        assert client.get("/v2/scratch/csrf/manifests/keep").status_code == 404


def test_deleting_an_image_names_its_tags_first(store: Store) -> None:
    image = sample_image("doomed")
    with store.registry.client() as client:
        push(client, "scratch/images", "a", image)
        push(client, "scratch/images", "b", image)
        push(client, "scratch/images", "other", sample_image("stays"))
    with Visitor(store.registry.url) as visitor:
        digest = image.manifest.digest
        confirm = visitor.page(f"/r/scratch/images/-/manifest/{digest}/delete")
        assert "a, b" in text_of(confirm)
        token = visitor.csrf(f"/r/scratch/images/-/manifest/{digest}/delete")
        done = visitor.post(f"/r/scratch/images/-/manifest/{digest}/delete", csrf=token)
        assert done.status_code == 303
        remaining = text_of(visitor.page("/r/scratch/images"))
    assert "other" in remaining and "1 tag" in remaining
    with store.registry.client() as client:
        assert client.get(f"/v2/scratch/images/manifests/{digest}").status_code == 404
        assert client.get("/v2/scratch/images/tags/list").json()["tags"] == ["other"]


def test_deleting_a_repository_deletes_every_manifest(store: Store) -> None:
    with store.registry.client() as client:
        push(client, "scratch/whole", "1", sample_image("whole1"))
        push_index(client, "scratch/whole", "2", build_index([sample_image("w2")]))
    with Visitor(store.registry.url) as visitor:
        assert "2 tags" in text_of(visitor.page("/r/scratch/whole/-/delete"))
        token = visitor.csrf("/r/scratch/whole/-/delete")
        done = visitor.post("/r/scratch/whole/-/delete", csrf=token)
        assert done.status_code == 303 and done.headers["location"] == "/ui/"
    with store.registry.client() as client:
        tags = client.get("/v2/scratch/whole/tags/list")
        assert tags.status_code == 404 or not tags.json().get("tags")


def test_the_storage_page_runs_a_dry_run_and_shows_what_it_would_free(store: Store) -> None:
    with Visitor(store.registry.url) as visitor:
        page = text_of(visitor.page("/storage"))
        assert "Largest repositories" in page and "teamother" in page
        token = visitor.csrf("/storage")
        assert visitor.post("/storage/gc", {"dryrun": "true"}).status_code == 403
        started = visitor.post("/storage/gc", {"dryrun": "true"}, token)
        assert started.status_code == 303 and started.headers["location"] == "/ui/storage"
        deadline = time.monotonic() + 30
        while (status := visitor.get("/storage/gc.json").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status["state"] == "finished" and status["report"]["dry_run"] is True
        page = text_of(visitor.page("/storage"))
        assert "Would free" in page
        assert "dry run" in page  # in the last collections


def test_deletes_disabled_hide_the_buttons_and_refuse_the_forms(tmp_path: Path) -> None:
    config = {**UI, "storage": {"delete": {"enabled": False}}}
    with run_registry(tmp_path, config=config) as registry, registry.client() as client:
        push(client, "kept", "v1", sample_image("kept"))
        with Visitor(registry.url) as visitor:
            page = visitor.page("/r/kept")
            assert "Delete" not in text_of(page)
            token = visitor.csrf("/storage")
            refused = visitor.post("/r/kept/-/tag/v1/delete", csrf=token)
            assert refused.status_code == 403
        assert client.get("/v2/kept/manifests/v1").status_code == 200


def test_the_ui_moves_with_its_path_and_the_http_prefix(tmp_path: Path) -> None:
    config = {"ui": {"enabled": True, "path": "/browse"}, "http": {"prefix": "/registry"}}
    with run_registry(tmp_path, config=config) as registry, \
            httpx.Client(base_url=registry.url + "/registry") as client:
        push(client, "moved", "v1", sample_image("moved"))
        root = client.get("/")
        assert root.headers["location"] == "/registry/browse/"
        with Visitor(registry.url, "/registry/browse") as visitor:
            page = visitor.page("/")
            assert 'href="/registry/browse/r/moved"' in page
            assert 'href="/registry/browse/static/ui.css"' in page
        first_visit = httpx.get(registry.url + "/registry/browse/")
        assert "Path=/registry/browse/" in first_visit.headers["set-cookie"]


def test_many_repositories_are_paged(tmp_path: Path) -> None:
    with run_registry(tmp_path, config=UI) as registry, registry.client() as client:
        image = sample_image("paged", layers=1)
        for number in range(53):
            push(client, f"paged/r{number:02d}", "v1", image)
        with Visitor(registry.url) as visitor:
            first = visitor.page("/")
            assert first.count('href="/ui/r/paged/') == 50
            assert "Page 1 of 2" in text_of(first) and 'rel="next"' in first
            second = visitor.page("/", params={"page": "2"})
            assert second.count('href="/ui/r/paged/') == 3
            assert "paged/r52" in second and 'rel="prev"' in second

            # Sorted by size, every page a slice of one order (equal sizes: by name); the
            # largest first unless asked otherwise.
            def names(**params: str) -> list[str]:
                return [name for name, _ in rows(visitor.page("/", params=params))]

            every = [f"paged/r{number:02d}" for number in range(53)]
            assert names(sort="size", order="asc") + names(sort="size", order="asc",
                                                           page="2") == every
            assert names(sort="size") + names(sort="size", page="2") == every[::-1]
            assert names(sort="size", q="r5") == every[50:][::-1]
            # A write changes the order at once.
            push(client, "paged/r07", "v2", sample_image("bigger", layers=3))
            assert names(sort="size")[0] == "paged/r07"
            assert names(sort="size", order="asc", page="2")[-1] == "paged/r07"


def test_push_times_are_the_index_record_or_the_link_time(tmp_path: Path) -> None:
    """A tag pushed through dockyard shows when the index recorded the push, whatever the
    link's mtime (a copied or restored store resets it); a tag another registry wrote shows
    its link's mtime."""
    root = tmp_path / "store"
    with run_registry(tmp_path, root=root, config=UI) as registry, \
            registry.client() as client:
        push(client, "app", "ours", sample_image("ours"))
    with run_registry(tmp_path, "distribution", root=root) as other, \
            other.client() as theirs:
        push(theirs, "app", "theirs", sample_image("theirs"))
    long_ago = time.mktime((2020, 5, 6, 12, 0, 0, 0, 0, -1))
    tags = root / "docker/registry/v2/repositories/app/_manifests/tags"
    for tag in ("ours", "theirs"):
        os.utime(tags / tag / "current/link", (long_ago, long_ago))
    # Started again, the index takes in what distribution wrote.
    with run_registry(tmp_path, root=root, config=UI) as registry, \
            Visitor(registry.url) as visitor:
        page = visitor.page("/r/app")
    # Each row's second time is its push (the first, when its image was made).
    cells = {tag: times[1] for tag, row in re.findall(
        r'href="/ui/r/app/-/image/(\w+)"(.*?)</tr>', page, re.S)
        for times in [re.findall(r"<time.*?</time>", row)]}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert f'title="{today}' in cells["ours"], cells
    assert 'title="2020-05-06' in cells["theirs"], cells
