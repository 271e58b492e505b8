"""Garbage collection while the registry serves pushes, and a collector killed part-way."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    make_image,
    push_image,
    random_blob,
)
from tests.support.server import GC_SCOPES, RunningRegistry, run_registry

PUSHERS = 8
SECONDS = 30


def push_sharing(client: httpx.Client, name: str, tag: str, shared: list[bytes]
                 ) -> tuple[bytes, list[bytes]] | None:
    """Push an image reusing two shared layers (skipping uploads the registry says it has,
    as docker does) plus a new one. None if the registry refused it cleanly."""
    layers = [*random.sample(shared, 2), random_blob(2048)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "nonce": os.urandom(8).hex()}).encode()
    for blob in (config, *layers):
        if client.head(f"/v2/{name}/blobs/{digest_of(blob)}").status_code == 200:
            continue
        started = client.post(f"/v2/{name}/blobs/uploads/",
                              params={"mount": digest_of(blob), "from": "online/base"})
        if started.status_code == 201:
            continue
        assert started.status_code == 202, started.text
        done = client.put(started.headers["Location"], params={"digest": digest_of(blob)},
                          content=blob)
        assert done.status_code == 201, done.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }).encode()
    response = client.put(f"/v2/{name}/manifests/{tag}", content=manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    if response.status_code == 400:
        # A blob it skipped was collected in between: refused cleanly, never stored.
        assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", response.text
        return None
    assert response.status_code == 201, response.text
    return manifest, [config, *layers]


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_gc_during_concurrent_pushes(tmp_path: Path, scope: str) -> None:
    shared = [random_blob(4096) for _ in range(6)]
    with run_registry(tmp_path, config=GC_SCOPES[scope]) as running:
        with running.client() as client:
            base = make_image(layer_count=0)
            base.layers = shared
            for blob in shared:
                client.post("/v2/online/base/blobs/uploads/", params={"digest": digest_of(blob)},
                            content=blob)
        expected: dict[tuple[str, str], tuple[bytes, list[bytes]]] = {}
        refused = []
        lock = threading.Lock()
        stop = time.monotonic() + SECONDS
        errors: list[BaseException] = []

        def pusher(number: int) -> None:
            try:
                with running.client() as client:
                    count = 0
                    while time.monotonic() < stop:
                        name, tag = f"online/p{number}", f"t{count % 4}"
                        pushed = push_sharing(client, name, tag, shared)
                        with lock:
                            if pushed is None:
                                refused.append((name, tag))
                            else:
                                expected[(name, tag)] = pushed
                        count += 1
                        if count % 5 == 0:  # drop a tag now and then: garbage to collect
                            old = f"t{(count + 1) % 4}"
                            client.delete(f"/v2/{name}/manifests/{old}")
                            with lock:
                                expected.pop((name, old), None)
            except BaseException as error:  # surfaced below
                errors.append(error)

        threads = [threading.Thread(target=pusher, args=(n,)) for n in range(PUSHERS)]
        for thread in threads:
            thread.start()
        runs = 0
        while time.monotonic() < stop:
            result = subprocess.run(
                [sys.executable, "-m", "dockyard", "gc", "--json", "--delete-untagged",
                 "--grace-period", "0", str(running.config_path)],
                capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            runs += 1
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert runs >= 2 and len(expected) >= PUSHERS

        with running.client() as client:
            for (name, tag), (manifest, blobs) in expected.items():
                got = client.get(f"/v2/{name}/manifests/{tag}")
                assert got.status_code == 200, (name, tag)
                assert got.content == manifest
                for blob in blobs:
                    assert client.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob
        assert_no_dangling_references(running)


def assert_no_dangling_references(running: RunningRegistry) -> None:
    """Every manifest revision in the store has all its blobs (a walk of the store)."""
    v2 = running.root / "docker/registry/v2"
    checked = 0
    for link in v2.glob("repositories/**/_manifests/revisions/sha256/*/link"):
        digest = link.read_text().split(":", 1)[1]
        document = json.loads((v2 / f"blobs/sha256/{digest[:2]}/{digest}/data").read_bytes())
        for item in [document.get("config"), *document.get("layers", [])]:
            if item:
                hex_digest = item["digest"].split(":", 1)[1]
                assert (v2 / f"blobs/sha256/{hex_digest[:2]}/{hex_digest}/data").exists(), \
                    f"{link} needs missing blob {item['digest']}"
                checked += 1
    assert checked


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_killed_collector_leaves_a_serving_store_and_the_next_run_finishes(
        tmp_path: Path, scope: str) -> None:
    with run_registry(tmp_path, config=GC_SCOPES[scope]) as running, running.client() as client:
        keep = make_image()
        push_image(client, "killed/keep", "v1", keep)
        doomed: list[str] = []
        for number in range(100):
            image = make_image(layer_count=20, layer_size=64)
            push_image(client, "killed/drop", f"d{number}", image)
            client.delete(f"/v2/killed/drop/manifests/{image.digest}")
            doomed += [digest_of(blob).split(":", 1)[1] for blob in image.layers]
        blobs = running.root / "docker/registry/v2/blobs"

        def stored() -> int:
            return len(list(blobs.glob("sha256/*/*/data")))

        # A sweep of 2,000 small files can take a few milliseconds on a fast disk, so the
        # watch stats a sample of the doomed blobs in a tight loop rather than listing them.
        watched = [str(blobs / f"sha256/{hex_digest[:2]}/{hex_digest}/data")
                   for hex_digest in doomed[::50]]
        command = [sys.executable, "-m", "dockyard", "gc", "--json", "--grace-period", "0",
                   str(running.config_path)]
        collector = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while all(map(os.path.exists, watched)):  # kill it once the sweep has begun
            assert collector.poll() is None and time.monotonic() < deadline
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        assert collector.returncode == -signal.SIGKILL
        assert stored() > len(keep.layers) + 2, "the collector finished before the kill"
        # Whatever the collector got through, the kept image is whole.
        assert client.get("/v2/killed/keep/manifests/v1").content == keep.manifest
        for blob in (keep.config, *keep.layers):
            assert client.get(f"/v2/killed/keep/blobs/{digest_of(blob)}").content == blob
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr
        again = json.loads(subprocess.run(command, capture_output=True, text=True,
                                          timeout=300).stdout)
        assert again["blobs_deleted"] == []
        remaining = {f"sha256:{path.parent.name}" for path in
                     (running.root / "docker/registry/v2/blobs").glob("sha256/*/*/data")}
        assert remaining == {digest_of(blob) for blob in (keep.config, *keep.layers)} | \
            {keep.digest}
        assert client.get("/v2/killed/keep/manifests/v1").content == keep.manifest
        assert_no_dangling_references(running)
