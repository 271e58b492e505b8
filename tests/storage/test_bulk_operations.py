"""The storage drivers' batch operations, as garbage collection uses them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dockyard.storage import StorageDriver
from dockyard.storage.filesystem import INLINE_BATCH, FilesystemDriver
from dockyard.storage.memory import MemoryDriver


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


@pytest.fixture(params=["filesystem", "memory"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "filesystem":
        return FilesystemDriver(str(tmp_path / "root"))
    return MemoryDriver()


@pytest.mark.parametrize("count", [3, INLINE_BATCH + 5])  # inline and in a thread
def test_delete_many_removes_trees_and_skips_missing(driver: StorageDriver, count: int) -> None:
    async def scenario() -> None:
        for n in range(count):
            await driver.put_content(f"/blobs/b{n}/data", b"x" * n)
            await driver.put_content(f"/blobs/b{n}/nested/link", b"l")
        await driver.put_content("/blobs/keep/data", b"kept")
        doomed = [f"/blobs/b{n}" for n in range(count)] + ["/blobs/never-existed"]
        await driver.delete_many(doomed)
        assert await driver.list("/blobs") == ["keep"]
        assert await driver.get_content("/blobs/keep/data") == b"kept"

    run(scenario())


def test_stat_many_in_order(driver: StorageDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/a/data", b"12345")
        await driver.put_content("/b/data", b"1")
        infos = await driver.stat_many(["/b/data", "/missing/data", "/a/data"])
        assert [info.size if info else None for info in infos] == [1, None, 5]

    run(scenario())


def test_prune_removes_empty_parents_only(driver: StorageDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/repos/team/other/_layers/link", b"l")
        await driver.put_content("/repos/team/gone/_layers/link", b"l")
        await driver.delete("/repos/team/gone/_layers")
        await driver.prune_many(["/repos/team/gone"], "/repos")
        assert await driver.list("/repos/team") == ["other"]
        await driver.delete("/repos/team/other/_layers")
        await driver.prune_many(["/repos/team/other"], "/repos")
        assert await driver.stat("/repos/team") is None
        assert await driver.stat("/repos") is not None or isinstance(driver, MemoryDriver)

    run(scenario())


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


@pytest.mark.parametrize("keep_one", [False, True])
def test_prune_many_siblings_at_once(driver: StorageDriver, keep_one: bool) -> None:
    count = INLINE_BATCH * 4  # spread over the delete threads, racing for their parent

    async def scenario() -> None:
        for n in range(count):
            await driver.put_content(f"/repos/team/r{n}/_layers/link", b"l")
        await driver.put_content("/repos/other/_layers/link", b"l")
        gone = range(count - 1) if keep_one else range(count)
        await driver.delete_many([f"/repos/team/r{n}/_layers" for n in gone])
        await driver.prune_many([f"/repos/team/r{n}" for n in gone], "/repos")
        if keep_one:
            assert await driver.list("/repos/team") == [f"r{count - 1}"]
        else:
            assert await driver.stat("/repos/team") is None
        assert sorted(await driver.list("/repos")) == (["other", "team"] if keep_one else ["other"])

    run(scenario())
