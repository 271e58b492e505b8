"""The filesystem driver never reads outside its root, whichever directory on a path is a
symlink (a store is shared with other tools, and a planted link must not leak files)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from dockyard.storage import beneath
from dockyard.storage.driver import PathNotFound
from dockyard.storage.filesystem import FilesystemDriver

SECRET = b"outside the store\n"


def run(coroutine: Awaitable[Any]) -> Any:
    async def wrapped() -> Any:
        return await coroutine

    return asyncio.run(wrapped())


async def read_all(driver: FilesystemDriver, path: str) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path)])


@pytest.fixture(params=["openat2", "realpath"])
def driver(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> FilesystemDriver:
    """A store holding one honest repository, links inside it, and links leading out."""
    if request.param == "realpath":  # as on kernels (or sandboxes) without openat2
        monkeypatch.setattr(beneath, "_have_openat2", False)
    outside = tmp_path / "outside"
    (outside / "repo" / "_manifests").mkdir(parents=True)
    (outside / "repo" / "_manifests" / "link").write_bytes(SECRET)
    (outside / "secret").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "repositories" / "honest" / "_manifests").mkdir(parents=True)
    (root / "repositories" / "honest" / "_manifests" / "link").write_bytes(b"honest")
    # Out of the store: a whole repository directory, a parent higher up, a relative link.
    os.symlink(outside / "repo", root / "repositories" / "planted")
    os.symlink(outside, root / "elsewhere")
    os.symlink("../../outside", root / "repositories" / "climbing")
    # Inside the store: a directory link to another place in the same store is allowed.
    os.symlink(root / "repositories" / "honest", root / "repositories" / "alias")
    return FilesystemDriver(str(root))


@pytest.mark.parametrize("path", [
    "/repositories/planted/_manifests/link",
    "/elsewhere/secret",
    "/elsewhere/repo/_manifests/link",
    "/repositories/climbing/secret",
])
def test_reads_through_a_link_out_of_the_store_find_nothing(driver: FilesystemDriver,
                                                            path: str) -> None:
    with pytest.raises(PathNotFound):
        run(driver.get_content(path))
    with pytest.raises(PathNotFound):
        run(read_all(driver, path))
    assert run(driver.stat(path)) is None


@pytest.mark.parametrize("path", [
    "/repositories/planted/_manifests",
    "/repositories/planted/_manifests/link",
    "/elsewhere/secret",
    "/repositories/climbing/repo",
])
def test_deletes_through_a_link_out_of_the_store_touch_nothing_outside(
        driver: FilesystemDriver, path: str, tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        run(driver.delete(path))
    run(driver.delete_many([path]))
    assert (tmp_path / "outside" / "secret").read_bytes() == SECRET
    assert (tmp_path / "outside" / "repo" / "_manifests" / "link").read_bytes() == SECRET


def test_deleting_a_link_removes_the_link_only(driver: FilesystemDriver, tmp_path: Path
                                               ) -> None:
    run(driver.delete("/repositories/planted"))
    assert "planted" not in run(driver.list("/repositories"))
    assert (tmp_path / "outside" / "repo" / "_manifests" / "link").read_bytes() == SECRET


@pytest.mark.parametrize("path", ["/repositories/planted", "/repositories/planted/_manifests",
                                  "/elsewhere", "/repositories/climbing"])
def test_listing_through_a_link_out_of_the_store_finds_nothing(driver: FilesystemDriver,
                                                               path: str) -> None:
    with pytest.raises(PathNotFound):
        run(driver.list(path))


def test_the_store_itself_still_reads(driver: FilesystemDriver) -> None:
    assert run(driver.get_content("/repositories/honest/_manifests/link")) == b"honest"
    assert run(driver.get_content("/repositories/alias/_manifests/link")) == b"honest"
    assert run(read_all(driver, "/repositories/honest/_manifests/link")) == b"honest"
    assert sorted(run(driver.list("/repositories"))) == [
        "alias", "climbing", "honest", "planted"]
    assert run(driver.list("/repositories/alias")) == ["_manifests"]
    assert "repositories" in run(driver.list("/"))
    with pytest.raises(PathNotFound):
        run(driver.get_content("/repositories/honest"))  # a directory is not a file
    with pytest.raises(PathNotFound):
        run(read_all(driver, "/repositories/honest"))
