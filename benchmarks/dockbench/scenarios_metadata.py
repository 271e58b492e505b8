"""Metadata scenarios: manifest GET/HEAD, tags list, catalog (auth: scenarios_auth.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import statistics
import time
from pathlib import Path

from .clients import Client, expect, run_ab_head, run_wrk, upload_bytes
from .common import (
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    BenchError,
)
from .servers import Server
from .settings import Settings
from .storegen import MetadataStore

MANIFEST_REPO = "bench/manifest"
MANIFEST_PATH = f"/v2/{MANIFEST_REPO}/manifests/latest"


def push_small_image(client: Client, repo: str, tag: str) -> str:
    """Untimed set-up: a config, one small layer and an OCI manifest under `tag`."""
    layer = gzip.compress(os.urandom(4096))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    ).encode()
    layer_digest = upload_bytes(client, repo, layer)
    config_digest = upload_bytes(client, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    expect(
        client.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        ),
        (201,),
        "PUT manifest",
    )
    got = expect(
        client.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}),
        (200,),
        "GET manifest",
    )
    if got.body != manifest:
        raise BenchError("GET manifest returned different bytes than were pushed")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def manifest_get(server: Server, settings: Settings, workdir: Path) -> dict[str, float]:
    got = run_wrk(
        server.base + MANIFEST_PATH,
        {"Accept": MANIFEST_ACCEPT},
        workdir / "manifest-get.lua",
        settings.wrk_duration,
        settings.wrk_threads,
        settings.wrk_connections,
    )
    return {"manifest_get_rps": got["rps"], "manifest_get_p99": got["p99_ms"]}


def manifest_head(server: Server, settings: Settings, workdir: Path) -> dict[str, float]:
    got = run_ab_head(
        server.base + MANIFEST_PATH,
        MANIFEST_ACCEPT,
        workdir / "ab-head.csv",
        settings.wrk_duration,
        settings.wrk_connections,
    )
    return {"manifest_head_rps": got["rps"], "manifest_head_p99": got["p99_ms"]}


# ---- tags list and catalog of a large store


def tags_list(server: Server, store: MetadataStore, settings: Settings, workdir: Path) -> dict[
    str, float
]:
    got = run_wrk(
        f"{server.base}/v2/{store.tags_repo}/tags/list",
        {},
        workdir / "tags.lua",
        settings.wrk_duration,
        settings.wrk_threads,
        settings.list_connections,
        timeout_s=30,
    )
    return {"tags_rps": got["rps"], "tags_p99": got["p99_ms"]}


def check_tags(server: Server, store: MetadataStore) -> str:
    client = Client(server.port, timeout=120)
    try:
        got = expect(client.request("GET", f"/v2/{store.tags_repo}/tags/list"), (200,), "tags")
    finally:
        client.close()
    tags = json.loads(got.body).get("tags") or []
    if sorted(tags) != store.tags:
        raise BenchError(f"tags list: {len(tags)} tags, expected {len(store.tags)}")
    return f"tags list: all {len(tags)} tags in one response ({len(got.body):,} bytes)"


def _catalog_page(client: Client, target: str) -> tuple[list[str], str | None]:
    got = expect(client.request("GET", target), (200,), f"GET {target}")
    names = json.loads(got.body).get("repositories") or []
    link = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", got.header("link"))
    return list(names), (link.group(1) if link else None)


def whole_catalog(client: Client, count: int) -> tuple[list[str], int]:
    """Every repository, asking for `count` at once and following `Link` headers: a
    registry may answer fewer names a page (dockyard caps a page at 10,000). (names,
    requests)."""
    names, target = _catalog_page(client, f"/v2/_catalog?n={count}")
    requests = 1
    while target is not None:
        requests += 1
        if requests > count + 10:
            raise BenchError("catalog: more pages than repositories allow")
        more, target = _catalog_page(client, target)
        names += more
    return names, requests


def catalog_full(server: Server, store: MetadataStore, settings: Settings, workdir: Path) -> dict[
    str, float
]:
    """The whole catalog asked for at once: time to get it all (sequential, one keep-alive
    connection; following `Link` when a page is capped), and req/s under wrk when one
    response holds it all."""
    count = len(store.repositories)
    client = Client(server.port, timeout=120)
    times: list[float] = []
    requests = 1
    try:
        deadline = time.monotonic() + settings.wrk_duration
        while len(times) < 500 and (len(times) < 3 or time.monotonic() < deadline):
            started = time.perf_counter()
            names, requests = whole_catalog(client, count)
            times.append(time.perf_counter() - started)
            if len(times) == 1 and len(names) != count:
                raise BenchError("catalog: the responses do not hold every repository")
    finally:
        client.close()
    result = {"catalog_ms": statistics.median(times) * 1000}
    if requests == 1:
        got_wrk = run_wrk(
            f"{server.base}/v2/_catalog?n={count}",
            {},
            workdir / "catalog.lua",
            settings.wrk_duration,
            settings.wrk_threads,
            settings.list_connections,
            timeout_s=30,
        )
        result |= {"catalog_rps": got_wrk["rps"], "catalog_p99": got_wrk["p99_ms"]}
    return result


def catalog_walk(server: Server, store: MetadataStore, page: int = 100) -> tuple[float, list[str]]:
    """Seconds to list every repository in pages of `page`, following the Link header."""
    client = Client(server.port, timeout=120)
    names: list[str] = []
    target: str | None = f"/v2/_catalog?n={page}"
    pages = 0
    try:
        started = time.perf_counter()
        while target is not None:
            pages += 1
            if pages > len(store.repositories) // page + 10:
                raise BenchError("catalog walk: more pages than repositories allow")
            got, target = _catalog_page(client, target)
            names += got
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return elapsed, names


def catalog_pages(server: Server, store: MetadataStore) -> dict[str, float]:
    elapsed, names = catalog_walk(server, store)
    if names != store.repositories:
        raise BenchError(f"catalog walk: {len(names)} names, expected {len(store.repositories)}")
    return {"catalog_walk_s": elapsed}


def check_catalog(server: Server, store: MetadataStore) -> list[str]:
    """Untimed: the full catalog is exactly the store's repositories; the default page size."""
    client = Client(server.port, timeout=120)
    try:
        names, requests = whole_catalog(client, len(store.repositories))
        default, link = _catalog_page(client, "/v2/_catalog")
    finally:
        client.close()
    if names != store.repositories:
        raise BenchError(f"catalog: {len(names)} names, expected {len(store.repositories)}")
    pages = "one response" if requests == 1 else f"{requests} pages (following Link)"
    return [
        f"catalog ?n={len(store.repositories)}: all {len(names)} repositories, sorted, in "
        f"{pages}",
        f"catalog without n: {len(default)} names" + (", with a next Link" if link else ""),
    ]
