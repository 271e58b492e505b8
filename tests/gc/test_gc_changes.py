"""Garbage collection that looks at what changed (storage.index.solewriter): it sweeps the
index's candidates alone, frees exactly what a full pass frees of what dockyard wrote, and
leaves what no index recorded to `--full`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.gc.test_garbage_collect import blob_files, gc, image_blobs, shared_layer_images
from tests.gc.test_gc_in_server import wait_finished
from tests.support.oci import (
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_image,
    random_blob,
)
from tests.support.server import GC_SCOPES, run_registry

CHANGES = GC_SCOPES["changes"]


def plant_blob(root: Path, data: bytes, age: float = 7200) -> str:
    """A blob written into the store by something other than dockyard, `age` seconds ago."""
    hex_digest = hashlib.sha256(data).hexdigest()
    directory = root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest
    directory.mkdir(parents=True)
    (directory / "data").write_bytes(data)
    then = time.time() - age
    os.utime(directory / "data", (then, then))
    return f"sha256:{hex_digest}"


def test_a_collection_looks_at_what_deletes_and_uploads_left(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first, second, shared = shared_layer_images()
    with run_registry(tmp_path, root=root, config=CHANGES) as running, \
            running.client() as client:
        # A collection while the index is still being built looks at everything.
        assert "index: built" in running.wait_for_log("index: built")
        push_image(client, "gc/one", "v1", first)
        push_image(client, "gc/two", "v1", second)
        abandoned = push_blob(client, "gc/two", random_blob())  # its manifest never came
        config = running.config_path

        # Every upload is a candidate until a manifest needs it.
        report = gc(config, "--grace-period", "0")
        assert report["full_pass"] is False
        assert report["blobs_deleted"] == [abandoned]
        assert report["candidates"] == 1
        assert report["blobs_kept"] == len(image_blobs(first) | image_blobs(second))

        assert client.delete(f"/v2/gc/one/manifests/{first.digest}").status_code == 202
        only_first = image_blobs(first) - {digest_of(shared)}
        before = blob_files(root)
        dry = gc(config, "--dry-run", "--grace-period", "0")
        assert set(dry["blobs_deleted"]) == only_first | {first.digest}
        assert blob_files(root) == before

        report = gc(config, "--grace-period", "0")
        # The deleted image's manifest, config and layers; the shared layer is in use.
        assert report["candidates"] == len(only_first) + 1
        assert set(report["blobs_deleted"]) == only_first | {first.digest}
        assert report["bytes_freed"] == sum(
            len(blob) for blob in (first.config, *first.layers[1:])) + len(first.manifest)
        assert report["repositories_removed"] == ["gc/one"]
        assert blob_files(root) == before - only_first - {first.digest}
        assert not (root / "docker/registry/v2/repositories/gc/one").exists()

        again = gc(config, "--grace-period", "0")
        assert again["candidates"] == 0 and again["blobs_deleted"] == []

        assert client.get("/v2/gc/two/manifests/v1").content == second.manifest
        for blob in (second.config, *second.layers):
            assert client.get(f"/v2/gc/two/blobs/{digest_of(blob)}").content == blob

        # A blob no index recorded is not a candidate: only a full pass finds it.
        stray = plant_blob(root, random_blob())
        assert gc(config, "--grace-period", "0")["blobs_deleted"] == []
        assert stray in blob_files(root)
        full = gc(config, "--grace-period", "0", "--full")
        assert full["full_pass"] is True
        assert full["blobs_deleted"] == [stray]
        assert client.get("/v2/gc/two/manifests/v1").content == second.manifest


def test_a_repositorys_last_image_deleted_takes_the_repository_and_keeps_the_others(
        tmp_path: Path) -> None:
    with run_registry(tmp_path, config=CHANGES) as running, running.client() as client:
        image, kept = make_image(), make_image()
        push_image(client, "gone/app", "v1", image)
        push_image(client, "kept/app", "v1", kept)
        loose = push_blob(client, "kept/app", random_blob())
        settled = gc(running.config_path, "--grace-period", "0")
        assert settled["blobs_deleted"] == [loose]  # uploaded, never used

        assert client.delete(f"/v2/gone/app/manifests/{image.digest}").status_code == 202
        report = gc(running.config_path, "--grace-period", "0")
        assert set(report["blobs_deleted"]) == image_blobs(image) | {image.digest}
        assert client.get("/v2/_catalog").json()["repositories"] == ["kept/app"]
        assert client.get("/v2/kept/app/manifests/v1").content == kept.manifest


def test_a_blob_deleted_through_the_api_is_collected(tmp_path: Path) -> None:
    with run_registry(tmp_path, config=CHANGES) as running, running.client() as client:
        image = make_image()
        push_image(client, "api/app", "v1", image)
        gc(running.config_path, "--grace-period", "0")
        # A manifest deleted, then its config unlinked by hand from the repository.
        assert client.delete(f"/v2/api/app/manifests/{image.digest}").status_code == 202
        config_digest = digest_of(image.config)
        assert client.delete(f"/v2/api/app/blobs/{config_digest}").status_code == 202
        report = gc(running.config_path, "--grace-period", "0")
        assert config_digest in report["blobs_deleted"]
        assert set(report["blobs_deleted"]) == image_blobs(image) | {image.digest}


def test_without_the_setting_every_collection_is_full(tmp_path: Path) -> None:
    with run_registry(tmp_path) as running, running.client() as client:
        push_image(client, "plain/app", "v1", make_image())
        stray = plant_blob(running.root, random_blob())
        report = gc(running.config_path, "--grace-period", "0")
        assert report["full_pass"] is True and report["candidates"] is None
        assert report["blobs_deleted"] == [stray]


def test_admin_endpoint_collects_changes_or_everything(tmp_path: Path) -> None:
    config = {**CHANGES, "http": {"admin": {"enabled": True}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        assert "index: built" in running.wait_for_log("index: built")
        image = make_image()
        push_image(client, "admin/app", "v1", image)
        stray = plant_blob(running.root, random_blob())
        assert client.post("/admin/gc", params={"graceperiod": "0"}).status_code == 202
        report = wait_finished(client)["report"]
        assert report["full_pass"] is False and stray not in report["blobs_deleted"]
        started = client.post("/admin/gc", params={"graceperiod": "0", "full": "true"})
        assert started.status_code == 202 and started.json()["options"]["full"] is True
        report = wait_finished(client)["report"]
        assert report["full_pass"] is True and report["blobs_deleted"] == [stray]
        bad = client.post("/admin/gc", params={"full": "sometimes"})
        assert bad.status_code == 400 and error_codes(bad) == ["INVALID_PARAMETER"]


def test_the_schedule_makes_a_full_pass_once_its_interval_has_gone_by(tmp_path: Path) -> None:
    config = {"http": {"admin": {"enabled": True}},
              "storage": {"index": {"solewriter": True},
                          "gc": {"enabled": True, "interval": "1s", "graceperiod": "10s",
                                 "fullpassinterval": "1h"}}}
    root = tmp_path / "store"
    # A blob no index recorded: only a full pass (the first scheduled run) finds it.
    first_stray = plant_blob(root, random_blob())
    with run_registry(tmp_path, root=root, config=config) as running, \
            running.client() as client:
        deadline = time.monotonic() + 60
        while first_stray in blob_files(root):
            assert time.monotonic() < deadline, "no scheduled full pass"
            time.sleep(0.2)
        second_stray = plant_blob(root, random_blob())
        image = make_image()
        push_image(client, "scheduled/app", "v1", image)
        assert client.delete(f"/v2/scheduled/app/manifests/{image.digest}").status_code == 202
        # Within the hour, the next runs look at what changed: they take the deleted image
        # once its blobs are past the grace period (which keeps them from runs during the
        # push) and leave the blob no index recorded.
        deadline = time.monotonic() + 90
        while any(client.head(f"/v2/scheduled/app/blobs/{digest}").status_code == 200
                  for digest in image_blobs(image)):
            assert time.monotonic() < deadline, "no scheduled run took the deleted image"
            time.sleep(0.2)
        later = wait_finished(client)
        assert later["trigger"] == "schedule" and later["report"]["full_pass"] is False
        assert second_stray in blob_files(root)


def test_the_first_collection_on_a_store_another_registry_wrote_is_a_full_pass(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    image = make_image()
    with run_registry(tmp_path, "distribution", root=root) as other, other.client() as client:
        push_image(client, "old/app", "v1", image)
        stray = push_blob(client, "old/app", random_blob())  # uploaded, never used
    with run_registry(tmp_path, root=root, config=CHANGES) as running:
        config = running.config_path
    command = [sys.executable, "-m", "dockyard", "garbage-collect", "--grace-period", "0",
               str(config)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    # The index was built from a store it never recorded: what lies there unrecorded is
    # found by listing it, once.
    assert "looked at the whole store: the first collection since the index was built" in \
        first.stdout
    assert "deleted 0 manifests and 1 blobs" in first.stdout
    assert stray not in blob_files(root)
    second = gc(config, "--grace-period", "0")
    assert second["full_pass"] is False and second["full_pass_reason"] is None
    assert second["blobs_deleted"] == []
    with run_registry(tmp_path, root=root, config=CHANGES) as running, \
            running.client() as client:
        assert client.get("/v2/old/app/manifests/v1").content == image.manifest
