"""`dockyard garbage-collect` as a subprocess, on stores written by dockyard and distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.oci import (
    OCI_LAYER,
    Image,
    descriptor,
    digest_of,
    make_image,
    make_index,
    push_blob,
    push_image,
    random_blob,
)
from tests.support.server import GC_SCOPES, RunningRegistry, require_tool, run_registry


def gc(config: Path, *flags: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "garbage-collect", "--json", *flags, str(config)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def blob_files(root: Path) -> set[str]:
    blobs = root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{path.parent.name}" for path in blobs.glob("*/*/data")}


def shared_layer_images() -> tuple[Image, Image, bytes]:
    """Two images sharing their first layer."""
    shared = random_blob(4096)
    first, second = make_image(), make_image()
    for image in (first, second):
        document = json.loads(image.manifest)
        document["layers"][0] = descriptor(OCI_LAYER, shared)
        image.layers[0] = shared
        image.manifest = json.dumps(document).encode()
    return first, second, shared


def image_blobs(image: Image) -> set[str]:
    return {digest_of(blob) for blob in (image.config, *image.layers)}


@pytest.mark.parametrize("writer", ["dockyard", "distribution"])
def test_gc_frees_exactly_what_the_deleted_image_alone_used(tmp_path: Path, writer: str) -> None:
    root = tmp_path / "store"
    first, second, shared = shared_layer_images()
    with run_registry(tmp_path, writer, root=root) as running, running.client() as client:
        push_image(client, "gc/one", "v1", first)
        push_image(client, "gc/two", "v1", second)
        assert client.delete(f"/v2/gc/one/manifests/{first.digest}").status_code == 202
        config = running.config_path
    before = blob_files(root)
    only_first = image_blobs(first) - {digest_of(shared)}

    dry = gc(config, "--dry-run", "--grace-period", "0")
    assert dry["dry_run"] is True
    assert set(dry["blobs_deleted"]) == only_first | {first.digest}
    assert blob_files(root) == before  # a dry run deletes nothing

    report = gc(config, "--grace-period", "0")
    assert set(report["blobs_deleted"]) == only_first | {first.digest}
    assert report["bytes_freed"] == sum(
        len(blob) for blob in (first.config, *first.layers[1:])) + len(first.manifest)
    assert blob_files(root) == before - only_first - {first.digest}
    with run_registry(tmp_path, "dockyard", root=root) as running, running.client() as client:
        assert client.get("/v2/gc/two/manifests/v1").content == second.manifest
        for blob in (second.config, *second.layers):
            assert client.get(f"/v2/gc/two/blobs/{digest_of(blob)}").content == blob
        for digest in only_first:
            assert client.head(f"/v2/gc/one/blobs/{digest}").status_code == 404
    if writer == "distribution":
        # distribution still serves the collected store.
        with run_registry(tmp_path, "distribution", root=root) as running, \
                running.client() as client:
            assert client.get("/v2/gc/two/manifests/v1", headers={
                "Accept": second.media_type}).content == second.manifest


def test_grace_period_keeps_fresh_uploads(registry: RunningRegistry) -> None:
    with registry.client() as client:
        digest = push_blob(client, "gc/fresh", random_blob())
    report = gc(registry.config_path, "--grace-period", "1h")
    assert digest not in report["blobs_deleted"]
    assert report["blobs_kept_fresh"] >= 1
    with registry.client() as client:
        assert client.head(f"/v2/gc/fresh/blobs/{digest}").status_code == 200


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_delete_untagged_keeps_index_children_and_referrers(tmp_path: Path, scope: str) -> None:
    with run_registry(tmp_path, config=GC_SCOPES[scope]) as running, running.client() as client:
        children = [make_image(), make_image()]
        for child in children:
            push_image(client, "gc/multi", child.digest, child)
        index = make_index(children)
        client.put("/v2/gc/multi/manifests/v1", content=index,
                   headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
        signature = make_image(layer_count=1, extra={"subject": {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest_of(index), "size": len(index)}})
        push_image(client, "gc/multi", signature.digest, signature)
        orphan = make_image()
        push_image(client, "gc/multi", orphan.digest, orphan)
        retagged_old, retagged_new = make_image(), make_image()
        push_image(client, "gc/multi", "moving", retagged_old)
        push_image(client, "gc/multi", "moving", retagged_new)
        config = running.config_path

        report = gc(config, "--delete-untagged", "--grace-period", "0")
        assert sorted(report["manifests_deleted"]) == sorted(
            [f"gc/multi@{orphan.digest}", f"gc/multi@{retagged_old.digest}"])
        for kept in (*children, signature, retagged_new):
            assert client.get(f"/v2/gc/multi/manifests/{kept.digest}").status_code == 200
            for blob in (kept.config, *kept.layers):
                assert client.get(f"/v2/gc/multi/blobs/{digest_of(blob)}").content == blob
        assert client.get("/v2/gc/multi/manifests/v1").content == index
        referrers = client.get(f"/v2/gc/multi/referrers/{digest_of(index)}").json()
        assert [item["digest"] for item in referrers["manifests"]] == [signature.digest]
        for gone in (orphan, retagged_old):
            assert client.get(f"/v2/gc/multi/manifests/{gone.digest}").status_code == 404
            assert client.head(f"/v2/gc/multi/blobs/{digest_of(gone.config)}").status_code \
                == 404
        assert set(report["blobs_deleted"]) >= image_blobs(orphan) | image_blobs(retagged_old)


def test_text_output_and_alias(registry: RunningRegistry) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", "--dry-run", str(registry.config_path)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "would delete" in result.stdout and "blobs" in result.stdout


def test_bad_grace_period_is_a_usage_error(registry: RunningRegistry) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", "--grace-period", "soon",
         str(registry.config_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "grace" in result.stderr.lower() or "duration" in result.stderr


@pytest.mark.parametrize("writer", ["dockyard", "distribution"])
def test_skopeo_pulls_survivor_after_gc(tmp_path: Path, writer: str) -> None:
    from tests.support.clients import Skopeo
    from tests.support.images import read_oci_layout, sample_image, write_image_layout

    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    survivor = sample_image("survivor", layers=3)
    doomed = sample_image("doomed", layers=2)
    write_image_layout(tmp_path / "survivor", "v1", survivor)
    write_image_layout(tmp_path / "doomed", "v1", doomed)
    root = tmp_path / "store"
    with run_registry(tmp_path, writer, root=root) as running:
        skopeo.copy(f"oci:{tmp_path / 'survivor'}:v1", f"docker://{running.host}/gc/keep:v1")
        skopeo.copy(f"oci:{tmp_path / 'doomed'}:v1", f"docker://{running.host}/gc/drop:v1")
        skopeo("delete", "--tls-verify=false", f"docker://{running.host}/gc/drop:v1")
        config = running.config_path
    report = gc(config, "--grace-period", "0")
    assert report["blobs_deleted"]
    with run_registry(tmp_path, "dockyard", root=root) as running:
        skopeo.copy(f"docker://{running.host}/gc/keep:v1", f"oci:{tmp_path / 'back'}:v1")
    back = read_oci_layout(tmp_path / "back")
    original = read_oci_layout(tmp_path / "survivor")
    assert back.tags["v1"]["digest"] == original.tags["v1"]["digest"]
    for layer in survivor.layers:
        digest = layer.compressed.digest
        assert back.read_blob(digest) == original.read_blob(digest)
    for layer in doomed.layers:
        assert not (root / "docker/registry/v2/blobs/sha256" / layer.compressed.digest[7:9]
                    / layer.compressed.digest[7:] / "data").exists()


def test_gc_of_missing_config_file_fails_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", str(tmp_path / "nope.yml")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_empty_repositories_leave_the_catalog(tmp_path: Path, scope: str) -> None:
    with run_registry(tmp_path, config=GC_SCOPES[scope]) as running, running.client() as client:
        image, kept = make_image(), make_image()
        push_image(client, "team/emptied", "v1", image)
        push_image(client, "team/emptied/child", "v1", kept)
        push_image(client, "solo", "v1", kept)
        client.delete(f"/v2/team/emptied/manifests/{image.digest}")
        client.delete(f"/v2/solo/manifests/{kept.digest}")
        # A push in progress: a layer uploaded, its manifest not yet pushed.
        push_blob(client, "inflight/repo", random_blob())
        assert client.get("/v2/_catalog").json()["repositories"] == [
            "inflight/repo", "solo", "team/emptied", "team/emptied/child"]
        dry = gc(running.config_path, "--dry-run", "--grace-period", "0")
        assert sorted(dry["repositories_removed"]) == ["inflight/repo", "solo", "team/emptied"]
        # Two hours pass for everything but the in-flight push.
        repositories = running.root / "docker/registry/v2/repositories"
        old = time.time() - 7200
        for name in ("solo", "team/emptied"):
            for link in (repositories / name / "_layers").rglob("link"):
                os.utime(link, (old, old))
        report = gc(running.config_path, "--grace-period", "1h")
        # Fresh layer links keep the in-flight push's repository; the others go.
        assert sorted(report["repositories_removed"]) == ["solo", "team/emptied"]
        assert client.get("/v2/_catalog").json()["repositories"] == [
            "inflight/repo", "team/emptied/child"]
        assert client.get("/v2/team/emptied/child/manifests/v1").content == kept.manifest
        assert client.get("/v2/solo/tags/list").status_code == 404
    assert not (repositories / "solo").exists()
    assert sorted(path.name for path in (repositories / "team/emptied").iterdir()) == ["child"]


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_delete_untagged_keeps_manifests_pushed_within_the_grace_period(tmp_path: Path,
                                                                      scope: str) -> None:
    """Step one of every multi-platform push: children by digest, untagged until their
    index arrives. A collection in between must not take them."""
    with run_registry(tmp_path, config=GC_SCOPES[scope]) as running, running.client() as client:
        children = [make_image(), make_image()]
        for child in children:
            push_image(client, "gc/halfway", child.digest, child)
        config = running.config_path

        dry = gc(config, "--delete-untagged", "--dry-run")
        assert dry["manifests_deleted"] == [] and dry["blobs_deleted"] == []
        assert dry["manifests_kept_fresh"] == 2
        report = gc(config, "--delete-untagged")
        assert report["manifests_deleted"] == [] and report["manifests_kept_fresh"] == 2

        index = make_index(children)
        pushed = client.put("/v2/gc/halfway/manifests/v1", content=index,
                            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
        assert pushed.status_code == 201, pushed.text

        # Past the grace period, an untagged manifest goes (the children are now needed).
        orphan = make_image()
        push_image(client, "gc/halfway", orphan.digest, orphan)
        late = gc(config, "--delete-untagged", "--grace-period", "0")
        assert late["manifests_deleted"] == [f"gc/halfway@{orphan.digest}"]
        for child in children:
            assert client.get(f"/v2/gc/halfway/manifests/{child.digest}").status_code == 200
