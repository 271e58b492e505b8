"""Garbage collection must never delete what the store references, even when another
registry (or a hand) changed the store behind dockyard's index."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gc.test_garbage_collect import blob_files, gc, image_blobs
from tests.support.oci import make_image, push_image
from tests.support.server import GC_SCOPES, deep_merge, run_registry


def age_every_file(root: Path, seconds: float) -> None:
    """What `touch -h -d '2 hours ago'` does to a whole tree."""
    when = time.time() - seconds
    for directory, _, files in os.walk(root):
        for name in [*files, "."]:
            os.utime(os.path.join(directory, name), (when, when), follow_symlinks=False)


def test_gc_keeps_images_distribution_pushed_while_dockyard_was_stopped(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ours, theirs, also_theirs = make_image(), make_image(), make_image()
    with run_registry(tmp_path, root=root) as dockyard, dockyard.client() as client:
        push_image(client, "mixed/ours", "v1", ours)
        config = dockyard.config_path
    with run_registry(tmp_path, "distribution", root=root) as other, other.client() as client:
        push_image(client, "mixed/theirs", "v1", theirs)
        push_image(client, "mixed/ours", "v2", also_theirs)
    age_every_file(root, 2 * 3600)
    needed = image_blobs(ours) | image_blobs(theirs) | image_blobs(also_theirs) | {
        ours.digest, theirs.digest, also_theirs.digest}

    index_file = root / "dockyard/index.sqlite"
    index_before = index_file.read_bytes()
    dry = gc(config, "--dry-run", "--delete-untagged")
    assert dry["blobs_deleted"] == [] and dry["manifests_deleted"] == []
    assert set(dry["repositories_reindexed"]) == {"mixed/ours", "mixed/theirs"}
    assert index_file.read_bytes() == index_before  # a dry run changes nothing on disk
    report = gc(config, "--delete-untagged")
    assert report["blobs_deleted"] == [] and report["manifests_deleted"] == []
    assert set(report["repositories_reindexed"]) == {"mixed/ours", "mixed/theirs"}
    assert needed <= blob_files(root)
    with run_registry(tmp_path, "distribution", root=root) as other, other.client() as client:
        served = client.get("/v2/mixed/theirs/manifests/v1",
                            headers={"Accept": theirs.media_type})
        assert served.content == theirs.manifest
        for digest in image_blobs(theirs):
            assert client.get(f"/v2/mixed/theirs/blobs/{digest}").status_code == 200


def test_gc_while_serving_sees_a_repository_removed_by_hand_and_one_written_by_another(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    kept, dropped, foreign = make_image(), make_image(), make_image()
    with run_registry(tmp_path, root=root) as dockyard, dockyard.client() as client:
        push_image(client, "hand/kept", "v1", kept)
        push_image(client, "hand/dropped", "v1", dropped)
        # Another registry writes the same store while dockyard serves it.
        with run_registry(tmp_path, "distribution", root=root) as other, \
                other.client() as theirs:
            push_image(theirs, "hand/foreign", "v1", foreign)
        # The classic manual delete.
        shutil.rmtree(root / "docker/registry/v2/repositories/hand/dropped")
        age_every_file(root, 2 * 3600)
        report = gc(dockyard.config_path, "--delete-untagged", "--grace-period", "0")
        assert set(report["repositories_reindexed"]) == {"hand/dropped", "hand/foreign"}
        assert set(report["blobs_deleted"]) == image_blobs(dropped) | {dropped.digest}
        assert client.get("/v2/hand/foreign/manifests/v1").content == foreign.manifest
        for digest in image_blobs(foreign) | image_blobs(kept):
            assert client.get(f"/v2/hand/foreign/blobs/{digest}").status_code in (200, 404)
            assert digest in blob_files(root)
        assert client.get("/v2/hand/foreign/tags/list").json()["tags"] == ["v1"]
        assert client.get("/v2/hand/dropped/tags/list").status_code == 404
        catalog = client.get("/v2/_catalog").json()["repositories"]
        assert "hand/foreign" in catalog and "hand/dropped" not in catalog


def wait_for(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_server_picks_up_changes_made_behind_its_back(tmp_path: Path, scope: str) -> None:
    root = tmp_path / "store"
    kept, dropped, foreign, retagged = make_image(), make_image(), make_image(), make_image()
    settings = deep_merge({"storage": {"index": {"resyncinterval": "1s"}},
                           "http": {"workers": 2}}, GC_SCOPES[scope])
    with run_registry(tmp_path, root=root, config=settings) as dockyard, \
            dockyard.client() as client:
        push_image(client, "behind/kept", "v1", kept)
        push_image(client, "behind/dropped", "v1", dropped)
        with run_registry(tmp_path, "distribution", root=root) as other, \
                other.client() as theirs:
            push_image(theirs, "behind/foreign", "v1", foreign)
            push_image(theirs, "behind/kept", "v2", retagged)
        shutil.rmtree(root / "docker/registry/v2/repositories/behind/dropped")

        def caught_up() -> bool:
            catalog = client.get("/v2/_catalog").json()["repositories"]
            kept_tags = client.get("/v2/behind/kept/tags/list").json().get("tags")
            return catalog == ["behind/foreign", "behind/kept"] and kept_tags == ["v1", "v2"]

        assert wait_for(caught_up), client.get("/v2/_catalog").text
        assert client.get("/v2/behind/dropped/tags/list").status_code == 404
    assert "changed outside this registry" in dockyard.logs()
    # Told that nothing else writes the store, the server says loudly that something did.
    warned = "storage.index.solewriter says nothing else writes the store" in dockyard.logs()
    assert warned is (scope == "changes")


def test_tags_of_a_repository_another_registry_created_are_listed_at_once(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    foreign = make_image()
    settings = {"storage": {"index": {"resyncinterval": "0"}}}
    with run_registry(tmp_path, root=root, config=settings) as dockyard, \
            dockyard.client() as client:
        # The index is built once, at start, and never again: a build that looked at the
        # store mid-push would keep the half-pushed repository as it saw it.
        assert wait_for(lambda: "index: built" in dockyard.logs()), dockyard.logs()
        with run_registry(tmp_path, "distribution", root=root) as other, \
                other.client() as theirs:
            push_image(theirs, "fresh/foreign", "v1", foreign)
        listed = client.get("/v2/fresh/foreign/tags/list")
        assert listed.status_code == 200, listed.text
        assert listed.json()["tags"] == ["v1"]
        assert client.get("/v2/fresh/never/tags/list").status_code == 404
