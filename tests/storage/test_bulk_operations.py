"""The filesystem driver's batch operations never leave its root (what every driver's batch
operations do is checked in test_driver_contract.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dockyard.storage.filesystem import INLINE_BATCH, FilesystemDriver


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_filesystem_batches_never_follow_links_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "data").write_bytes(b"precious")
    driver = FilesystemDriver(str(tmp_path / "root"))
    run(driver.put_content("/blobs/real/data", b"x"))
    root = tmp_path / "root"
    # A directory link inside the store pointing outside, and a link as an entry.
    os.symlink(outside, root / "blobs" / "escape")
    os.symlink(outside / "victim", root / "blobs" / "entry-link")

    async def scenario() -> None:
        infos = await driver.stat_many(["/blobs/escape/victim/data", "/blobs/entry-link"])
        assert infos == [None, None]
        await driver.delete_many(["/blobs/escape/victim", "/blobs/escape/victim/data",
                                  "/blobs/entry-link", "/blobs/real"])
        await driver.prune_many(["/blobs/escape/victim"], "/blobs")

    run(scenario())
    assert (outside / "victim" / "data").read_bytes() == b"precious"
    assert not (root / "blobs" / "entry-link").exists()  # the link itself is removed
    assert not (root / "blobs" / "real").exists()


def test_filesystem_tree_deletes_remove_links_inside_never_their_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "data").write_bytes(b"precious")
    (outside / "file").write_bytes(b"also precious")
    root = tmp_path / "root"
    driver = FilesystemDriver(str(root))
    count = INLINE_BATCH * 4  # large enough to be spread over the delete threads
    for n in range(count):
        run(driver.put_content(f"/blobs/b{n}/data", b"x"))
        os.symlink(outside / "victim", root / "blobs" / f"b{n}" / "dir-link")
        os.symlink(outside / "file", root / "blobs" / f"b{n}" / "file-link")
        (root / "blobs" / f"b{n}" / "deeper" / "still").mkdir(parents=True)
        os.symlink(outside, root / "blobs" / f"b{n}" / "deeper" / "still" / "up")

    run(driver.delete_many([f"/blobs/b{n}" for n in range(count)]))
    assert run(driver.list("/blobs")) == []
    assert (outside / "victim" / "data").read_bytes() == b"precious"
    assert (outside / "file").read_bytes() == b"also precious"
