"""`dockyard du --config CONFIG`: what a store holds on disk and what keeps it, read from the
store itself (a store written by dockyard, and one written by distribution 2.8.2), without
changing a byte of it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cli.conftest import image_with
from tests.support.oci import Image, digest_of, push_blob, push_image, random_blob
from tests.support.server import RunningRegistry


def store_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and directory under `root`: size, mtime and (files) content hash."""
    state: dict[str, tuple[int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, content)
    return state


def du_config(tmp_path: Path, root: Path, name: str, **storage: Any) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"version": 0.1, "storage": {
        "filesystem": {"rootdirectory": str(root)}, **storage}}))
    return path


def blobs_of(image: Image) -> dict[str, int]:
    found = {image.digest: len(image.manifest), digest_of(image.config): len(image.config)}
    found.update({digest_of(layer): len(layer) for layer in image.layers})
    return found


def test_du_on_a_store(cli: Any, any_registry: RunningRegistry, tmp_path: Path) -> None:
    base = random_blob(10_000)
    first = image_with([base, random_blob(1000)])
    second = image_with([base, random_blob(2000)])
    untagged = image_with([base, random_blob(3000)])
    stray = random_blob(4000)
    with any_registry.client() as client:
        push_image(client, "one", "latest", first)
        push_image(client, "one", "v1", first)
        push_image(client, "two", "latest", second)
        push_image(client, "one", untagged.digest, untagged)  # by digest: no tag
        push_blob(client, "one", stray)  # no manifest needs it
        location = client.post("/v2/two/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=b"x" * 1500).status_code == 202
    any_registry.process.terminate()
    any_registry.process.wait(timeout=30)
    root = any_registry.root
    before = store_state(root)

    one, two = blobs_of(first), blobs_of(second)
    reachable = {**one, **two}
    only_untagged = {d: s for d, s in blobs_of(untagged).items() if d not in reachable}
    expected_repositories = [
        {"repository": "one", "tags": 2, "manifests": 1, "blobs": 3,
         "size": sum(one.values()), "missing": []},
        {"repository": "two", "tags": 1, "manifests": 1, "blobs": 3,
         "size": sum(two.values()), "missing": []},
    ]
    stored = {**reachable, **blobs_of(untagged), digest_of(stray): len(stray)}

    config = du_config(tmp_path, root, "plain")
    result = cli("du", "--json", "--config", str(config))
    assert result.code == 0, result.err
    report = result.json()
    assert report["store"] == str(root)
    assert report["repositories"] == expected_repositories
    assert report["total"] == {
        "size": sum(reachable.values()), "manifests": 2, "blobs": 5,
        "shared": len(base), "sharedBlobs": 1, "sharedSize": len(base)}
    assert report["untagged"] == {
        "manifests": 1, "repositories": 1, "size": len(untagged.manifest),
        "onlyTheyReach": {"blobs": 3, "size": sum(only_untagged.values())}}
    # Just pushed: within garbage collection's grace period (1h by default).
    assert report["unreferenced"] == {
        "blobs": 0, "size": 0, "gracePeriod": 3600,
        "withinGracePeriod": {"blobs": 1, "size": len(stray)}}
    assert report["uploads"] == {
        "inProgress": {"count": 1, "size": 1500}, "abandoned": {"count": 0, "size": 0},
        "purgeAge": 168 * 3600}
    assert report["stored"] == {"blobs": len(stored), "size": sum(stored.values())}

    # A config whose grace period and purge age have passed: gc would free the stray blob
    # and purge the upload.
    time.sleep(1.5)
    eager = du_config(tmp_path, root, "eager", gc={"graceperiod": "0s"},
                      maintenance={"uploadpurging": {"age": "1s"}})
    again = cli("du", "--json", str(eager))  # a .yml path works as the target too
    assert again.code == 0, again.err
    assert again.json()["unreferenced"] == {
        "blobs": 1, "size": len(stray), "gracePeriod": 0,
        "withinGracePeriod": {"blobs": 0, "size": 0}}
    assert again.json()["uploads"] == {
        "inProgress": {"count": 0, "size": 0}, "abandoned": {"count": 1, "size": 1500},
        "purgeAge": 1}

    table = cli("du", "--bytes", "--config", str(config))
    assert table.code == 0, table.err
    text = " ".join(table.out.split())
    for line in (f"total {sum(reachable.values())} B; {len(base)} B of it (1 blob) is shared "
                 "by several repositories and counted once",
                 f"Untagged manifests: 1 in 1 repository, {len(untagged.manifest)} B; only "
                 f"they keep {sum(only_untagged.values())} B (3 blobs)",
                 "Unreferenced blobs: 0, 0 B",
                 f"1 blob ({len(stray)} B) uploaded within the grace period (1h)",
                 "Uploads: 1 in progress, 1500 B; 0 abandoned",
                 f"In the store: {len(stored)} blobs, {sum(stored.values())} B"):
        assert line in text, (line, table.out)

    assert store_state(root) == before  # nothing written, not even an index


def test_du_config_errors(cli: Any, tmp_path: Path) -> None:
    missing = du_config(tmp_path, tmp_path / "nowhere", "missing")
    result = cli("du", "--config", str(missing))
    assert result.code == 1
    assert "nowhere" in result.err
    assert not (tmp_path / "nowhere").exists()

    both = cli("du", "--config", str(missing), "localhost:5000")
    assert both.code == 2, both.err
