"""What every storage driver promises (`dockyard.storage.driver`), checked the same way
against each of them: the registry above must not be able to tell which one it runs on."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from dockyard.storage import PathNotFound, StorageDriver
from dockyard.storage.driver import InvalidPath
from tests.support.drivers import DRIVER_KINDS, DriverKind

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(DRIVER_KINDS))
def driver_kind(request: pytest.FixtureRequest) -> DriverKind:
    return DRIVER_KINDS[request.param]


@pytest.fixture
def driver(driver_kind: DriverKind, request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[StorageDriver]:
    """A fresh, empty driver of each kind."""
    yield from driver_kind.factory(request, tmp_path)


async def read_all(driver: StorageDriver, path: str, offset: int = 0,
                   length: int | None = None) -> list[bytes]:
    return [piece async for piece in driver.read(path, offset, length)]


async def listing(driver: StorageDriver, path: str) -> list[str]:
    return sorted(await driver.list(path))


async def is_empty_directory_or_missing(driver: StorageDriver, path: str) -> bool:
    """Object stores have no empty directories: there, an emptied one is simply gone."""
    try:
        return await driver.list(path) == []
    except PathNotFound:
        return await driver.stat(path) is None


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes whose every slice is distinct from its neighbours', so an offset error shows."""
    block = bytes((seed + n * 7 + n // 251) % 256 for n in range(65521))  # a prime length
    return (block * (size // len(block) + 1))[:size]


# get_content / put_content


async def test_put_then_get_returns_the_bytes_and_overwrites(driver: StorageDriver) -> None:
    await driver.put_content("/a/b/c", b"first")
    assert await driver.get_content("/a/b/c") == b"first"
    await driver.put_content("/a/b/c", b"\x00\xffsecond, longer")
    assert await driver.get_content("/a/b/c") == b"\x00\xffsecond, longer"
    await driver.put_content("/a/b/c", b"")
    assert await driver.get_content("/a/b/c") == b""
    assert await listing(driver, "/a/b") == ["c"]  # no temporary file left beside it


async def test_put_content_creates_the_parents(driver: StorageDriver) -> None:
    await driver.put_content("/x/y/z/file", b"1")
    assert await listing(driver, "/x") == ["y"]
    assert await listing(driver, "/x/y/z") == ["file"]
    assert await listing(driver, "/") == ["x"]
    root = await driver.stat("/")
    assert root is not None and root.is_dir
    assert [info.path async for info in driver.walk("/")][:2] == ["/x", "/x/y"]


async def test_get_content_of_what_is_not_a_file(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"1")
    for path in ("/missing", "/dir/missing", "/dir/file/below", "/dir"):
        with pytest.raises(PathNotFound) as caught:
            await driver.get_content(path)
        assert caught.value.path == path


async def test_put_content_is_atomic_for_concurrent_readers(driver: StorageDriver,
                                                            driver_kind: DriverKind) -> None:
    """Each version is one repeated byte with a length of its own: a torn, short or mixed
    read shows as a wrong length or a second byte value."""
    path = "/repositories/r/_manifests/revisions/sha256/abc/link"
    versions = 150

    def version(n: int) -> bytes:
        return bytes([n % 256]) * (300_000 + 4099 * n)

    await driver.put_content(path, version(0))
    seen = await _read_while_writing(
        driver, driver_kind, path,
        write=lambda n: driver.put_content(path, version(n)), versions=versions)
    for content in seen:
        assert content[:1] and content == version(content[0]), \
            f"torn read of {len(content)} bytes"
    assert len(seen) >= versions


async def test_move_replaces_the_destination_atomically(driver: StorageDriver,
                                                        driver_kind: DriverKind) -> None:
    destination = "/blobs/sha256/ab/abcd/data"
    versions = 150

    def version(n: int) -> bytes:
        return bytes([n % 256]) * (300_000 + 4099 * n)

    async def write(n: int) -> None:
        await driver.put_content(f"/uploads/u{n}/data", version(n))
        await driver.move(f"/uploads/u{n}/data", destination)

    await driver.put_content(destination, version(0))
    seen = await _read_while_writing(driver, driver_kind, destination, write, versions)
    for content in seen:
        assert content[:1] and content == version(content[0]), \
            f"torn read of {len(content)} bytes"
    assert len(seen) >= versions


async def _read_while_writing(driver: StorageDriver, kind: DriverKind, path: str,
                              write: Callable[[int], Awaitable[None]],
                              versions: int) -> list[bytes]:
    """Read `path` over and over, with get_content and read, while `write(n)` writes
    versions 1..n; returns everything read. The writer waits for a read between versions,
    so reads and writes interleave however fast either side is."""
    done = threading.Event()
    readers_stopped = threading.Event()
    seen: list[bytes] = []

    async def read_until_done() -> None:
        try:
            while not done.is_set():
                seen.append(await driver.get_content(path))
                seen.append(b"".join(await read_all(driver, path)))
                await asyncio.sleep(0)
        finally:
            readers_stopped.set()

    async def write_all() -> None:
        try:
            for n in range(1, versions + 1):
                await write(n)
                reads = len(seen)
                deadline = time.monotonic() + 30
                while len(seen) == reads and not readers_stopped.is_set():
                    assert time.monotonic() < deadline, "the readers made no progress"
                    await asyncio.sleep(0.0005)
        finally:
            done.set()

    if kind.thread_safe:  # readers in threads overlap even a write that never awaits
        readers = [asyncio.to_thread(asyncio.run, read_until_done()) for _ in range(2)]
    else:
        readers = [read_until_done() for _ in range(2)]
    await asyncio.gather(write_all(), *readers)
    return seen


# stat


async def test_stat_of_files_directories_and_nothing(driver: StorageDriver) -> None:
    before = time.time()
    await driver.put_content("/d/file", b"12345")
    file = await driver.stat("/d/file")
    assert file is not None
    assert (file.path, file.size, file.is_dir) == ("/d/file", 5, False)
    # Clocks of a remote store may differ a little; a wrong unit or epoch would not.
    assert before - 300 < file.modified < time.time() + 300
    directory = await driver.stat("/d")
    assert directory is not None
    assert (directory.path, directory.size, directory.is_dir) == ("/d", 0, True)
    for path in ("/missing", "/d/missing", "/d/file/below"):
        assert await driver.stat(path) is None


async def test_stat_file_sees_files_only(driver: StorageDriver) -> None:
    await driver.put_content("/d/file", b"12345")
    file = await driver.stat_file("/d/file")
    assert file is not None
    assert (file.path, file.size, file.is_dir) == ("/d/file", 5, False)
    assert file == await driver.stat("/d/file")
    for path in ("/", "/d", "/missing", "/d/missing", "/d/file/below"):
        assert await driver.stat_file(path) is None


async def test_stat_follows_a_rewrite(driver: StorageDriver) -> None:
    await driver.put_content("/f", b"1")
    await driver.put_content("/f", b"123")
    info = await driver.stat("/f")
    assert info is not None and info.size == 3


# list


async def test_list_names_direct_children_only(driver: StorageDriver) -> None:
    await driver.put_content("/top/a/deep/file", b"1")
    await driver.put_content("/top/b", b"2")
    await driver.put_content("/top/bc/file", b"3")
    assert await listing(driver, "/top") == ["a", "b", "bc"]
    assert await listing(driver, "/top/a") == ["deep"]


async def test_list_of_what_is_not_a_directory(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"1")
    for path in ("/missing", "/dir/missing", "/dir/file"):
        with pytest.raises(PathNotFound):
            await driver.list(path)


async def test_list_of_an_emptied_directory(driver: StorageDriver) -> None:
    await driver.put_content("/dir/sub/file", b"1")
    await driver.delete("/dir/sub/file")
    assert await is_empty_directory_or_missing(driver, "/dir/sub")


async def test_list_shows_names_ending_in_tmp(driver: StorageDriver) -> None:
    """Only a driver's own in-flight temporary files are hidden: `.tmp` is a valid ending
    for a tag or a repository name, and those must be listed like any other."""
    await driver.put_content("/tags/v1.tmp/current/link", b"sha256:1")
    await driver.put_content("/tags/v2/current/link", b"sha256:2")
    await driver.put_content("/tags/x.tmp", b"a file")
    assert await listing(driver, "/tags") == ["v1.tmp", "v2", "x.tmp"]
    assert [info.path async for info in driver.walk("/tags")] == [
        "/tags/v1.tmp", "/tags/v1.tmp/current", "/tags/v1.tmp/current/link",
        "/tags/v2", "/tags/v2/current", "/tags/v2/current/link", "/tags/x.tmp"]


# move


async def test_move_a_file(driver: StorageDriver) -> None:
    await driver.put_content("/up/u1/data", b"content")
    await driver.move("/up/u1/data", "/blobs/ab/data")
    assert await driver.get_content("/blobs/ab/data") == b"content"
    assert await driver.stat("/up/u1/data") is None
    assert await listing(driver, "/blobs/ab") == ["data"]


async def test_move_replaces_an_existing_file(driver: StorageDriver) -> None:
    await driver.put_content("/src", b"new")
    await driver.put_content("/dst/file", b"old, and longer")
    await driver.move("/src", "/dst/file")
    assert await driver.get_content("/dst/file") == b"new"
    assert await driver.stat("/src") is None


async def test_move_a_missing_source(driver: StorageDriver) -> None:
    await driver.put_content("/dst", b"kept")
    await driver.put_content("/file", b"1")
    for source in ("/missing", "/nowhere/missing", "/file/below"):
        with pytest.raises(PathNotFound) as caught:
            await driver.move(source, "/dst")
        assert caught.value.path == source
    assert await driver.get_content("/dst") == b"kept"


async def test_move_a_directory_tree(driver: StorageDriver) -> None:
    """As fsck quarantines a corrupt blob: its whole directory moves."""
    await driver.put_content("/blobs/ab/abcd/data", b"corrupt")
    await driver.put_content("/blobs/ab/abcd/extra/more", b"more")
    await driver.put_content("/blobs/ab/abce/data", b"neighbour")
    await driver.move("/blobs/ab/abcd", "/quarantine/abcd")
    assert await driver.get_content("/quarantine/abcd/data") == b"corrupt"
    assert await driver.get_content("/quarantine/abcd/extra/more") == b"more"
    assert await driver.stat("/blobs/ab/abcd") is None
    assert await driver.stat("/blobs/ab/abcd/data") is None
    assert await listing(driver, "/blobs/ab") == ["abce"]
    assert await driver.get_content("/blobs/ab/abce/data") == b"neighbour"


# delete


async def test_delete_a_file(driver: StorageDriver) -> None:
    await driver.put_content("/d/gone", b"1")
    await driver.put_content("/d/kept", b"2")
    await driver.delete("/d/gone")
    assert await driver.stat("/d/gone") is None
    assert await listing(driver, "/d") == ["kept"]


async def test_delete_a_tree(driver: StorageDriver) -> None:
    for path in ("/r/a/one", "/r/a/deep/er/two", "/r/a/deep/three", "/r/ab/kept", "/r/a.b"):
        await driver.put_content(path, b"x")
    await driver.delete("/r/a")
    for path in ("/r/a", "/r/a/one", "/r/a/deep", "/r/a/deep/er/two"):
        assert await driver.stat(path) is None
    assert await listing(driver, "/r") == ["a.b", "ab"]  # neighbours sharing a prefix stay
    assert await driver.get_content("/r/ab/kept") == b"x"


async def test_delete_of_nothing(driver: StorageDriver) -> None:
    await driver.put_content("/file", b"1")
    for path in ("/missing", "/nowhere/missing", "/file/below"):
        with pytest.raises(PathNotFound) as caught:
            await driver.delete(path)
        assert caught.value.path == path
    assert await driver.get_content("/file") == b"1"


# writer


async def test_writer_appends_and_reopens_to_continue(driver: StorageDriver) -> None:
    path = "/_uploads/u1/data"
    writer = await driver.writer(path)
    assert writer.size == 0
    await writer.write(b"hello ")
    await writer.write(b"")
    await writer.write(b"world")
    assert writer.size == 11
    await writer.close()
    info = await driver.stat_writer(path)
    assert info is not None and info.size == 11 and not info.is_dir

    again = await driver.writer(path)
    assert again.size == 11
    await again.write(b"!")
    assert again.size == 12
    await again.commit()
    assert await driver.get_content(path) == b"hello world!"
    info = await driver.stat(path)
    assert info is not None and info.size == 12
    info = await driver.stat_writer(path)
    assert info is not None and info.size == 12

    # A committed file is continued too.
    after = await driver.writer(path)
    assert after.size == 12
    await after.write(b"?")
    await after.commit()
    assert await driver.get_content(path) == b"hello world!?"


async def test_writer_commit_to_another_path(driver: StorageDriver) -> None:
    path, destination = "/_uploads/u3/data", "/blobs/ab/data"
    await driver.put_content(destination, b"old")
    first = await driver.writer(path)
    await first.write(b"hello ")
    await first.close()
    writer = await driver.writer(path)
    await writer.write(b"world")
    placed = await writer.commit_to(destination)
    # An object store writes a file of one part at the destination itself.
    assert placed == (driver.name == "s3aws")
    if not placed:  # what the caller does instead
        await writer.commit()
        await driver.move(path, destination)
    assert await driver.get_content(destination) == b"hello world"
    assert await driver.stat_writer(path) is None and await driver.stat(path) is None
    with pytest.raises(ValueError):
        await writer.write(b"!")
    with pytest.raises(InvalidPath):
        await (await driver.writer("/_uploads/u4/data")).commit_to("/../x")


async def test_reopen_continues_what_was_kept_and_creates_nothing(
        driver: StorageDriver) -> None:
    path = "/_uploads/u5/data"
    assert await driver.reopen(path) is None
    assert await driver.stat_writer(path) is None and await driver.stat(path) is None
    await driver.put_content("/_uploads/u5/dir/file", b"1")
    assert await driver.reopen("/_uploads/u5/dir") is None
    writer = await driver.writer(path)
    await writer.write(b"abc")
    await writer.close()
    kept = await driver.reopen(path)
    assert kept is not None and kept.size == 3
    await kept.write(b"d")
    await kept.commit()
    again = await driver.reopen(path)
    assert again is not None and again.size == 4
    await again.close()
    assert await driver.get_content(path) == b"abcd"


async def test_new_writer_starts_a_file_to_continue(driver: StorageDriver) -> None:
    path = "/_uploads/u6/data"
    writer = await driver.new_writer(path)
    assert writer.size == 0
    await writer.close()
    info = await driver.stat_writer(path)
    assert info is not None and info.size == 0
    writer = await driver.new_writer("/_uploads/u7/data")
    await writer.write(b"abc")
    await writer.close()
    kept = await driver.reopen("/_uploads/u7/data")
    assert kept is not None and kept.size == 3
    await kept.write(b"d")
    await kept.commit()
    assert await driver.get_content("/_uploads/u7/data") == b"abcd"


async def test_writer_of_nothing_leaves_an_empty_file(driver: StorageDriver) -> None:
    writer = await driver.writer("/_uploads/u2/data")
    await writer.close()
    info = await driver.stat_writer("/_uploads/u2/data")
    assert info is not None and info.size == 0
    await (await driver.writer("/_uploads/u2/data")).commit()
    assert await driver.get_content("/_uploads/u2/data") == b""
    assert await listing(driver, "/_uploads/u2") == ["data"]


async def test_writer_keeps_many_parts_across_writers(driver: StorageDriver) -> None:
    """Chunks of every size, each through a writer of its own, add up to the file; the
    state kept between them lists as nothing but the file's own name (if anything)."""
    path = "/_uploads/u7/data"
    await driver.put_content("/_uploads/u7/startedat", b"now")
    data = pattern(17 * 1024 * 1024 + 3, seed=7)
    cuts = [0, 4096, 3 * 1024 * 1024, 3 * 1024 * 1024 + 1, 9 * 1024 * 1024,
            16 * 1024 * 1024, 16 * 1024 * 1024 + 4096, len(data)]
    for start, end in itertools.pairwise(cuts):
        writer = await driver.writer(path)
        assert writer.size == start
        await writer.write(data[start:end])
        await writer.close()
        info = await driver.stat_writer(path)
        assert info is not None and info.size == end
        assert await listing(driver, "/_uploads/u7") in (["data", "startedat"], ["startedat"])
    writer = await driver.writer(path)
    await writer.commit()
    assert b"".join(await read_all(driver, path)) == data


async def test_writer_truncate_back_to_its_start_after_sending_parts(
        driver: StorageDriver) -> None:
    """A broken chunk that had already filled parts is undone exactly, whether the chunk
    is then sent again or something shorter finishes the file."""
    path = "/_uploads/u8/data"
    data = pattern(17 * 1024 * 1024 + 11, seed=8)
    kept = 6 * 1024 * 1024  # more than one part of the smallest size S3 takes
    writer = await driver.writer(path)
    await writer.write(data[:kept])
    await writer.close()
    for _attempt in range(2):
        writer = await driver.writer(path)
        await writer.write(data[kept:])  # fills parts, then breaks
        await writer.truncate(kept)
        assert writer.size == kept
        await writer.close()
        info = await driver.stat_writer(path)
        assert info is not None and info.size == kept
    writer = await driver.writer(path)
    await writer.write(b"short end")
    await writer.commit()
    assert b"".join(await read_all(driver, path)) == data[:kept] + b"short end"

    # Sent again in full, the chunk's parts are the file's.
    again = "/_uploads/u9/data"
    writer = await driver.writer(again)
    await writer.write(data[:9 * 1024 * 1024])
    await writer.truncate(0)
    await writer.write(data)
    await writer.commit()
    assert b"".join(await read_all(driver, again)) == data


async def test_writer_shows_no_more_than_was_written(driver: StorageDriver) -> None:
    """While a writer is open, what a reader sees is a prefix of what was written."""
    path = "/_uploads/u3/data"
    data = pattern(3 * 1024 * 1024 + 5)
    writer = await driver.writer(path)
    for start in range(0, len(data), 700_000):
        await writer.write(data[start:start + 700_000])
        try:
            visible = await driver.get_content(path)
        except PathNotFound:
            continue  # an object store shows nothing before commit
        assert data[:writer.size].startswith(visible)
    await writer.commit()
    assert await driver.get_content(path) == data


async def test_writer_truncate_drops_a_broken_chunk(driver: StorageDriver) -> None:
    path = "/_uploads/u4/data"
    writer = await driver.writer(path)
    await writer.write(b"good part")
    await writer.write(b"broken chunk")
    await writer.truncate(9)
    assert writer.size == 9
    await writer.write(b", then more")
    assert writer.size == 20
    await writer.commit()
    assert await driver.get_content(path) == b"good part, then more"


async def test_writer_truncate_never_grows_a_file(driver: StorageDriver) -> None:
    """Only what `write` appended is ever visible: truncating past the end drops nothing
    and adds nothing."""
    path = "/_uploads/u5/data"
    writer = await driver.writer(path)
    await writer.write(b"12345")
    await writer.truncate(5)
    await writer.truncate(100)
    assert writer.size == 5
    await writer.write(b"6")
    await writer.commit()
    assert await driver.get_content(path) == b"123456"


async def test_writer_refuses_bad_truncation_and_use_after_close(driver: StorageDriver) -> None:
    writer = await driver.writer("/_uploads/u6/data")
    await writer.write(b"12345")
    with pytest.raises(ValueError):
        await writer.truncate(-1)
    await writer.commit()
    await writer.close()  # closing after the end is harmless
    with pytest.raises(ValueError):
        await writer.write(b"more")
    with pytest.raises(ValueError):
        await writer.truncate(0)
    with pytest.raises(ValueError):
        await writer.commit()
    assert await driver.get_content("/_uploads/u6/data") == b"12345"


async def test_writer_of_a_large_file(driver: StorageDriver) -> None:
    data = pattern(5 * 1024 * 1024 + 17, seed=3)
    writer = await driver.writer("/big")
    await writer.write(data[:4 * 1024 * 1024])  # large writes may leave the event loop
    await writer.write(data[4 * 1024 * 1024:])
    await writer.commit()
    assert b"".join(await read_all(driver, "/big")) == data


# read


async def test_read_ranges(driver: StorageDriver) -> None:
    data = pattern(1000)
    await driver.put_content("/f", data)
    for offset, length in [(0, None), (0, 1000), (10, None), (10, 20), (999, None),
                           (999, 1), (500, 10_000), (0, 0), (1000, None), (1000, 5),
                           (5000, None), (5000, 10)]:
        pieces = await read_all(driver, "/f", offset, length)
        end = None if length is None else offset + length
        assert b"".join(pieces) == data[offset:end], (offset, length)
        assert all(pieces), "no empty pieces"


async def test_read_of_an_empty_file(driver: StorageDriver) -> None:
    await driver.put_content("/empty", b"")
    assert await read_all(driver, "/empty") == []
    assert await read_all(driver, "/empty", 0, 10) == []


async def test_read_of_a_large_file_in_pieces(driver: StorageDriver) -> None:
    size = 9 * 1024 * 1024 + 3  # more than one piece however a driver cuts them
    data = pattern(size, seed=1)
    await driver.put_content("/large", data)
    pieces = await read_all(driver, "/large")
    assert b"".join(pieces) == data
    assert all(pieces)
    for offset, length in [(256 * 1024 - 1, 300_000), (4 * 1024 * 1024 - 2, 4 * 1024 * 1024 + 9),
                           (size - 10, None), (1, size + 100)]:
        pieces = await read_all(driver, "/large", offset, length)
        end = None if length is None else offset + length
        assert b"".join(pieces) == data[offset:end], (offset, length)


async def test_read_of_what_is_not_a_file(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"1")
    for path in ("/missing", "/dir", "/dir/file/below"):
        with pytest.raises(PathNotFound):
            await read_all(driver, path)


async def test_read_is_lazy_and_closes_cleanly(driver: StorageDriver) -> None:
    """A client that goes away mid-download: the reader is closed after one piece."""
    data = pattern(9 * 1024 * 1024, seed=2)
    await driver.put_content("/large", data)
    pieces: AsyncIterator[bytes] = driver.read("/large")
    first = await anext(pieces)
    assert data.startswith(first) and first
    await pieces.aclose()  # type: ignore[attr-defined]
    await driver.delete("/large")
    assert await driver.stat("/large") is None


# stat_many, delete_many, prune_many


async def test_stat_many_answers_in_order(driver: StorageDriver) -> None:
    await driver.put_content("/a/data", b"12345")
    await driver.put_content("/b/data", b"1")
    paths = ["/b/data", "/missing/data", "/a/data", "/a", "/a/data/below", "/b/data"]
    infos = await driver.stat_many(paths)
    assert [(info.path, info.size, info.is_dir) if info else None for info in infos] == [
        ("/b/data", 1, False), None, ("/a/data", 5, False), ("/a", 0, True), None,
        ("/b/data", 1, False)]
    assert list(await driver.stat_many([])) == []


# Small batches and large ones may differ (S3 lists a large one's shared directory once).
@pytest.mark.parametrize("count", [3, 40, 130])
async def test_delete_many_removes_files_and_trees_and_skips_missing(
        driver: StorageDriver, count: int) -> None:
    for n in range(count):
        await driver.put_content(f"/blobs/b{n}/data", b"x")
        await driver.put_content(f"/blobs/b{n}/nested/link", b"l")
    await driver.put_content("/blobs/keep/data", b"kept")
    # Neighbours of doomed names, before and after them in key order, stay.
    await driver.put_content("/blobs/b0-1/data", b"kept")
    await driver.put_content("/blobs/b0x/data", b"kept")
    await driver.put_content("/blobs/b0.txt", b"kept")
    await driver.put_content("/files/f1", b"1")
    await driver.put_content("/files/f2", b"2")
    doomed = [f"/blobs/b{n}" for n in range(count)] + [
        "/blobs/never-existed", "/nowhere/at/all", "/files/f1", "/files/f2/below",
        "/blobs/b0"]
    await driver.delete_many(doomed)
    assert await listing(driver, "/blobs") == ["b0-1", "b0.txt", "b0x", "keep"]
    assert await listing(driver, "/files") == ["f2"]
    assert await driver.get_content("/files/f2") == b"2"


async def test_delete_files_removes_exactly_those_files(driver: StorageDriver) -> None:
    for n in range(70):
        await driver.put_content(f"/blobs/b{n}/data", b"x")
    await driver.put_content("/blobs/b1/other", b"stays")
    await driver.put_content("/blobs/b10x", b"stays")
    await driver.delete_files([f"/blobs/b{n}/data" for n in range(70)] + ["/blobs/gone/data"])
    for n in range(70):
        assert await driver.stat_file(f"/blobs/b{n}/data") is None
    assert await driver.get_content("/blobs/b1/other") == b"stays"
    assert await driver.get_content("/blobs/b10x") == b"stays"


async def test_files_below_lists_what_walk_finds(driver: StorageDriver) -> None:
    """A listing of a whole tree (where a driver has one) finds every file `walk` does,
    however the tree's directories are split up to be listed side by side."""
    for team in range(3):
        for n in range(25):
            await driver.put_content(f"/repos/t{team}/r{n}/_layers/link", b"l")
            await driver.put_content(f"/repos/t{team}/r{n}-x/data", b"d")
        await driver.put_content(f"/repos/t{team}/file", b"f")
    await driver.put_content("/repos/top", b"t")
    await driver.put_content("/elsewhere/data", b"e")
    walked = {info.path for info in [info async for info in driver.walk("/repos")]
              if not info.is_dir}
    assert len(walked) == 3 * 51 + 1
    listed = await driver.files_below("/repos")
    if listed is not None:
        assert sorted(info.path for info in listed) == sorted(walked)
        assert list(await driver.files_below("/missing") or []) == []


@pytest.mark.parametrize("count", [1, 40])
async def test_prune_many_removes_empty_parents_up_to_stop(driver: StorageDriver,
                                                           count: int) -> None:
    for n in range(count):
        await driver.put_content(f"/repos/team/r{n}/_uploads/u/data", b"l")
    await driver.put_content("/repos/other/_layers/link", b"l")
    await driver.delete_many([f"/repos/team/r{n}/_uploads/u" for n in range(count)])
    await driver.prune_many([f"/repos/team/r{n}/_uploads" for n in range(count)], "/repos")
    assert await listing(driver, "/repos") == ["other"]
    assert await driver.stat("/repos/team") is None
    # `stop` itself stays even when it empties.
    await driver.delete("/repos/other/_layers/link")
    await driver.prune_many(["/repos/other/_layers"], "/repos/")
    assert await is_empty_directory_or_missing(driver, "/repos")
    if await driver.stat("/repos") is not None:
        assert await driver.list("/repos") == []


@pytest.mark.parametrize("keep_one", [False, True])
async def test_prune_many_of_siblings_at_once(driver: StorageDriver, keep_one: bool) -> None:
    """A batch large enough to be spread over threads, whose members race for one parent."""
    count = 40
    for n in range(count):
        await driver.put_content(f"/repos/team/r{n}/_layers/link", b"l")
    await driver.put_content("/repos/other/_layers/link", b"l")
    gone = range(count - 1) if keep_one else range(count)
    await driver.delete_many([f"/repos/team/r{n}/_layers" for n in gone])
    await driver.prune_many([f"/repos/team/r{n}" for n in gone], "/repos")
    if keep_one:
        assert await listing(driver, "/repos/team") == [f"r{count - 1}"]
        assert await listing(driver, "/repos") == ["other", "team"]
    else:
        assert await driver.stat("/repos/team") is None
        assert await listing(driver, "/repos") == ["other"]


async def test_prune_many_stops_at_what_is_not_empty(driver: StorageDriver) -> None:
    await driver.put_content("/repos/team/kept/_layers/link", b"l")
    await driver.put_content("/repos/team/gone/_uploads/u/data", b"d")
    await driver.put_content("/repos/team/file/data", b"a file is never pruned")
    await driver.delete("/repos/team/gone/_uploads/u")
    await driver.prune_many(["/repos/team/gone/_uploads", "/repos/team/file/data",
                             "/repos/team/missing/below", "/elsewhere/x"], "/repos")
    assert await listing(driver, "/repos/team") == ["file", "kept"]
    assert await driver.get_content("/repos/team/file/data") == b"a file is never pruned"
    assert await driver.get_content("/repos/team/kept/_layers/link") == b"l"


async def test_prune_many_stays_below_stop(driver: StorageDriver) -> None:
    await driver.put_content("/a/b/c/file", b"1")
    await driver.delete("/a/b/c/file")
    await driver.prune_many(["/a/b/c"], "/a/b")
    assert await is_empty_directory_or_missing(driver, "/a/b")
    await driver.put_content("/a/keep", b"k")
    await driver.prune_many(["/a/b"], "/a/b")  # `stop` itself is never removed
    await driver.prune_many(["/a/b/c"], "/other")  # nothing outside `stop` is touched
    assert await listing(driver, "/a") in (["b", "keep"], ["keep"])


# walk and free_space


async def test_walk_yields_everything_below_depth_first(driver: StorageDriver) -> None:
    for path in ("/w/b/2", "/w/a/x/1", "/w/a/y", "/w/c"):
        await driver.put_content(path, b"123")
    found = [(info.path, info.is_dir, info.size) async for info in driver.walk("/w")]
    assert found == [("/w/a", True, 0), ("/w/a/x", True, 0), ("/w/a/x/1", False, 3),
                     ("/w/a/y", False, 3), ("/w/b", True, 0), ("/w/b/2", False, 3),
                     ("/w/c", False, 3)]
    assert [info async for info in driver.walk("/missing")] == []
    assert [info.path async for info in driver.walk("/w/a/x")] == ["/w/a/x/1"]


async def test_free_space_is_a_count_or_unknown(driver: StorageDriver) -> None:
    free = await driver.free_space()
    assert free is None or (isinstance(free, int) and free >= 0)


# directories and files


# Only drivers with directories of their own: on S3 a "directory" is a key prefix.
@pytest.mark.parametrize("driver_kind", sorted(name for name, kind in DRIVER_KINDS.items()
                                               if kind.directories), indirect=True)
async def test_a_file_cannot_be_written_where_a_directory_is(driver: StorageDriver) -> None:
    await driver.put_content("/d/file", b"1")
    with pytest.raises(IsADirectoryError):
        await driver.put_content("/d", b"over a directory")
    with pytest.raises(IsADirectoryError):
        await driver.writer("/d")
    with pytest.raises(NotADirectoryError):
        await driver.put_content("/d/file/below", b"below a file")
    with pytest.raises(NotADirectoryError):
        await driver.writer("/d/file/below")
    assert await listing(driver, "/d") == ["file"]
    assert await driver.get_content("/d/file") == b"1"
    info = await driver.stat("/d")
    assert info is not None and info.is_dir


# paths


ODD_NAMES = ["-", "_", "...", "a..b", ".hidden", "v1.tmp", "UPPER.Case", "0", "a-b_c.d",
             "sha256", "x" * 200]


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_names_with_odd_but_valid_characters(driver: StorageDriver, name: str) -> None:
    path = f"/odd/{name}/{name}"
    await driver.put_content(path, b"content")
    await driver.put_content(f"/odd/{name}/other", b"keeps the directory")
    assert await driver.get_content(path) == b"content"
    assert await listing(driver, "/odd") == [name]
    assert await listing(driver, f"/odd/{name}") == sorted([name, "other"])
    info = await driver.stat(path)
    assert info is not None and info.size == 7
    writer = await driver.writer(path)
    await writer.write(b"+")
    await writer.commit()
    assert b"".join(await read_all(driver, path, 1)) == b"ontent+"
    await driver.move(path, f"/moved/{name}")
    assert await listing(driver, "/moved") == [name]
    await driver.delete(f"/odd/{name}")
    assert await driver.stat(f"/odd/{name}") is None
    assert await listing(driver, "/moved") == [name]


BAD_PATHS = ["", "relative", "/a/", "//a", "/a//b", "/a/../b", "/..", "/.", "/a/./b",
             "/a b", "/a\x00b", "/ä", "/a/b\n", "/a:b", "/a\\b"]


@pytest.mark.parametrize("bad", BAD_PATHS)
async def test_invalid_paths_are_refused_by_every_operation(driver: StorageDriver,
                                                            bad: str) -> None:
    await driver.put_content("/good", b"1")
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: driver.get_content(bad),
        lambda: driver.put_content(bad, b"x"),
        lambda: driver.stat(bad),
        lambda: driver.stat_file(bad),
        lambda: driver.list(bad),
        lambda: driver.move(bad, "/elsewhere"),
        lambda: driver.move("/good", bad),
        lambda: driver.delete(bad),
        lambda: driver.writer(bad),
        lambda: driver.reopen(bad),
        lambda: driver.new_writer(bad),
        lambda: read_all(driver, bad),
        lambda: driver.stat_many(["/good", bad]),
        lambda: driver.delete_many([bad]),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidPath):
            await attempt()
    assert await driver.get_content("/good") == b"1"
    assert await listing(driver, "/") == ["good"]

