"""The filesystem driver never reads or writes outside its root, whichever directory on a
path is a symlink (a store is shared with other tools, and a planted link must not leak
files or make the registry write elsewhere)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from dockyard.storage import beneath
from dockyard.storage.driver import PathNotFound, UnsafeWrite
from dockyard.storage.filesystem import FilesystemDriver
from tests.support.oci import error_codes, make_image, push_blob, push_image
from tests.support.server import run_registry

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


# -- writes ---------------------------------------------------------------------------------

def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every entry below `directory` (links not followed): file contents, None for others."""
    found: dict[str, bytes | None] = {}
    for parent, directories, files in os.walk(directory):
        for name in directories + files:
            entry = Path(parent) / name
            key = str(entry.relative_to(directory))
            found[key] = entry.read_bytes() if entry.is_file() and not entry.is_symlink() \
                else None
    return found


async def append(driver: FilesystemDriver, path: str, data: bytes) -> None:
    writer = await driver.writer(path)
    try:
        await writer.write(data)
    finally:
        await writer.close()


@pytest.mark.parametrize("path", [
    "/repositories/planted/_manifests/new",
    "/repositories/planted/_uploads/0123/data",  # directories to make below the link
    "/elsewhere/new",
    "/elsewhere/repo/_manifests/link",  # an existing file outside
    "/repositories/climbing/made/here",
])
def test_writes_through_a_link_out_of_the_store_touch_nothing_outside(
        driver: FilesystemDriver, path: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    before = snapshot(outside)
    run(driver.put_content("/staging/file", b"staged"))
    with pytest.raises(UnsafeWrite):
        run(driver.put_content(path, b"planted"))
    with pytest.raises(UnsafeWrite):
        run(append(driver, path, b"planted"))
    with pytest.raises(UnsafeWrite):
        run(driver.move("/staging/file", path))
    assert snapshot(outside) == before
    assert run(driver.get_content("/staging/file")) == b"staged"


def test_moving_a_file_in_from_outside_the_store_finds_nothing(driver: FilesystemDriver,
                                                               tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        run(driver.move("/elsewhere/secret", "/blobs/stolen/data"))
    assert (tmp_path / "outside" / "secret").read_bytes() == SECRET
    assert run(driver.stat("/blobs/stolen/data")) is None


def test_appending_never_follows_a_link_in_place_of_the_file(driver: FilesystemDriver,
                                                             tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret"
    data = Path(driver.root) / "repositories" / "honest" / "data"
    os.symlink(secret, data)
    with pytest.raises(UnsafeWrite):
        run(append(driver, "/repositories/honest/data", b"appended"))
    assert secret.read_bytes() == SECRET
    # A whole-file write replaces the link itself, as a rename does.
    run(driver.put_content("/repositories/honest/data", b"replaced"))
    assert secret.read_bytes() == SECRET
    assert not data.is_symlink() and data.read_bytes() == b"replaced"


def test_writes_inside_the_store_still_work(driver: FilesystemDriver) -> None:
    root = Path(driver.root)
    run(driver.put_content("/repositories/new/_manifests/tags/v1/current/link", b"sha256:1"))
    run(driver.put_content("/repositories/new/_manifests/tags/v1/current/link", b"sha256:2"))
    run(append(driver, "/repositories/new/_uploads/0123/data", b"first "))
    run(append(driver, "/repositories/new/_uploads/0123/data", b"second"))
    run(driver.move("/repositories/new/_uploads/0123/data", "/blobs/sha256/ab/abcd/data"))
    # A link to another place inside the store is followed, as reads follow it.
    run(driver.put_content("/repositories/alias/_manifests/other", b"through the alias"))
    assert run(driver.get_content("/repositories/new/_manifests/tags/v1/current/link")) \
        == b"sha256:2"
    assert run(driver.get_content("/blobs/sha256/ab/abcd/data")) == b"first second"
    assert run(driver.stat("/repositories/new/_uploads/0123/data")) is None
    assert (root / "repositories" / "honest" / "_manifests" / "other").read_bytes() \
        == b"through the alias"
    assert not [name for name in snapshot(root) if name.endswith(".tmp")]


def test_pushes_into_directories_linked_out_of_the_store_create_nothing_outside(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    for name in ("repository", "uploads", "manifests"):
        (outside / name).mkdir(parents=True)
    root = tmp_path / "store"
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        image = make_image(layer_count=1, layer_size=256)
        push_image(client, "hostile/repo", "v1", image)
        repositories = root / "docker/registry/v2/repositories"
        # A whole repository directory, an existing repository's _uploads, and the
        # _manifests of a repository whose blobs are honest.
        os.symlink(outside / "repository", repositories / "planted")
        shutil.rmtree(repositories / "hostile/repo/_uploads", ignore_errors=True)
        os.symlink(outside / "uploads", repositories / "hostile/repo/_uploads",
                   target_is_directory=True)
        (repositories / "hostile/other").mkdir()
        os.symlink(outside / "manifests", repositories / "hostile/other/_manifests",
                   target_is_directory=True)

        for name in ("planted", "hostile/repo"):
            response = client.post(f"/v2/{name}/blobs/uploads/")
            assert response.status_code == 403, (name, response.status_code, response.text)
            assert error_codes(response) == ["DENIED"]
        for blob in (image.config, *image.layers):
            push_blob(client, "hostile/other", blob)
        response = client.put("/v2/hostile/other/manifests/v1", content=image.manifest,
                              headers={"Content-Type": image.media_type})
        assert response.status_code == 403, response.text
        assert error_codes(response) == ["DENIED"]

        assert snapshot(outside) == {"repository": None, "uploads": None, "manifests": None}
        logs = running.logs()
        assert "Traceback" not in logs
        assert "leads out of the store" in logs  # the operator learns which path and why
        # The rest of the store is unaffected.
        push_image(client, "honest/repo", "v1", image)
        assert client.get("/v2/honest/repo/manifests/v1").content == image.manifest
