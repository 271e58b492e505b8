"""The interface every storage driver implements (filesystem, in-memory, S3).

Paths are absolute, slash-separated and driver-relative ("/docker/registry/v2/..."), the
same address space distribution's drivers use, so the on-disk layout matches. A path is made
of names of letters, digits, ".", "_" and "-" (not "." or ".."); every operation refuses
anything else with InvalidPath, and "/", the root, is valid for `stat`, `list` and `walk`.

Directories: a driver that has them (filesystem, in-memory) makes them for the files written
below, keeps one emptied until it is deleted or pruned, and refuses to write a file where a
directory is (IsADirectoryError) or below a file (NotADirectoryError). An object store (S3)
has none of its own: a directory is a key prefix, there while something is below it, gone as
soon as it empties, and a file may share its path with one. A path below a file names
nothing (PathNotFound, None) for every operation.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

PATH_RE = re.compile(r"(?:/[A-Za-z0-9._-]+)+")


class PathNotFound(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class InvalidPath(ValueError):
    pass


class UnsafeWrite(Exception):
    """A write refused because resolving its path would leave the store: a symlink on the
    way leads outside the root, or stands where the file itself should be."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refused to write {path}: {reason}")
        self.path = path


def check_path(path: str) -> str:
    """Refuse anything that could escape the store: only plain components, no dot-dirs."""
    if not PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath(f"invalid storage path: {path!r}")
    return path


def check_root_or_path(path: str) -> str:
    """As check_path, but also "/", the store's root (for `stat`, `list` and `walk`)."""
    return path if path == "/" else check_path(path)


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    modified: float
    is_dir: bool
    # What the store reports as the MD5 of the content, unchecked (S3's ETag, which is that
    # for an object written in one PUT without KMS): when it equals the MD5 of a content
    # the reader expects, the file holds that content; any other value proves nothing.
    content_md5: str | None = None


class FileWriter(abc.ABC):
    """Appends to one file, possibly over many writers in turn: `close` keeps what was
    written for the next `StorageDriver.writer` of the path to continue (from any process),
    `commit` makes it the whole file at `path`.

    Until `commit`, a reader of `path` sees a prefix of what was written (a filesystem shows
    every write, an object store nothing new), and `StorageDriver.stat_writer` tells how
    much the last writer kept. After `close` or `commit`, `write`, `truncate` and `commit`
    raise ValueError; closing again is harmless."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes in the file: what was there when it was opened, plus what was written."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Keep what was written, for a later writer of the path to continue."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make what was written the file at `path`, readable whole, and end the writer."""

    async def commit_to(self, destination: str) -> bool:
        """As `commit` and then the driver's `move` to `destination`, where the driver can
        write `destination` itself in one step and skip the move (an object store, for a
        file that fits in one request): True, the writer ended and nothing left at `path`.
        False, with nothing done, where it cannot: the caller commits and moves."""
        check_path(destination)
        return False

    @abc.abstractmethod
    async def truncate(self, size: int) -> None:
        """Drop everything after `size` bytes (undo a broken chunk); later writes append
        there. A file is never grown (a `size` past the end drops nothing); a negative
        `size` raises ValueError. Cutting back to the size the writer was opened with always
        works, and so does cutting within bytes written since; but an object store's writer
        sends each part as it fills and cannot read one back, so it refuses (ValueError) a
        cut below its opening size or into a part it sent, other than to its opening size."""


class StorageDriver(abc.ABC):
    name: str

    @abc.abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole file; PathNotFound if missing or a directory."""

    @abc.abstractmethod
    async def put_content(self, path: str, data: bytes) -> None:
        """Write a whole file atomically, making its parents: readers see the old or the new
        content, never a mix or a partial file."""

    @abc.abstractmethod
    async def stat(self, path: str) -> FileInfo | None:
        """Size and modification time (seconds since the epoch; size 0 for a directory), or
        None if nothing is there."""

    @abc.abstractmethod
    async def list(self, path: str) -> list[str]:
        """Names of the direct children of a directory, in no particular order;
        PathNotFound if missing or a file. An emptied directory lists as [] where directories
        exist (else it is missing). A driver's own temporary files are never listed; every
        valid name is, whatever it ends with (a tag may be called "v1.tmp")."""

    @abc.abstractmethod
    async def move(self, source: str, destination: str) -> None:
        """Atomically replace `destination` with `source`, a file or a whole directory (fsck
        moves a blob's), making the destination's parents: readers of `destination` see the
        old or the new file, never neither. PathNotFound, naming `source`, if it is
        missing. (An object store moves a file as a copy and a delete, atomically for
        readers of `destination`, but a directory object by object.)"""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree; PathNotFound if missing."""

    @abc.abstractmethod
    async def writer(self, path: str) -> FileWriter:
        """Open `path` for appending, creating it (and its parents) if needed: what the last
        writer of the path kept (closed or committed) is continued from its end."""

    async def new_writer(self, path: str) -> FileWriter:
        """`writer` of a path no writer has written to (a new upload's), which the caller
        knows without asking the store: it starts empty (an object store skips the reads
        that would find an earlier file to continue)."""
        return await self.writer(path)

    async def reopen(self, path: str) -> FileWriter | None:
        """`writer` of a path where a writer kept something (closed or committed), None where
        none did (`stat_writer` finds nothing, or a directory), creating nothing: a caller
        that needs both learns the size from the writer without asking the store twice."""
        info = await self.stat_writer(path)
        if info is None or info.is_dir:
            return None
        return await self.writer(path)

    async def stat_file(self, path: str) -> FileInfo | None:
        """As `stat`, for a file only: None for a directory as for nothing (an object store
        needs a listing to tell a directory from nothing, a file only a HEAD)."""
        info = await self.stat(path)
        return None if info is None or info.is_dir else info

    async def stat_writer(self, path: str) -> FileInfo | None:
        """As `stat`, but of what the last writer of `path` kept, committed or only closed:
        its size and when it last changed (default: `stat`, for a driver whose writers write
        the file itself)."""
        return await self.stat(path)

    @abc.abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        """Stream bytes `offset` to `offset + length` of a file (to its end if `length` is
        None), clipped to the file's end, in pieces that are never empty: an empty range
        yields nothing. PathNotFound, when iteration starts, if missing or a directory."""

    async def close(self) -> None:
        """Release what the driver holds for the running event loop (S3's connections);
        the driver stays usable, from this loop or another."""
        return None

    async def url_for(self, path: str, expires: float) -> str | None:
        """A URL from which a client can GET the file itself, with ranges, for `expires`
        seconds without asking the registry, or None where the driver has no such URL (a
        filesystem, memory). Whether the file exists is not checked."""
        check_path(path)
        return None

    async def free_space(self) -> int | None:
        """Bytes still free for the store, where the driver can tell (None: unbounded or
        unknown, as for object storage)."""
        return None

    # Bulk operations: garbage collection touches thousands of paths, and a driver can do a
    # batch in one go (one thread, one S3 request) where a call per path would not.
    async def stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        """`stat` of each path, in order."""
        return [await self.stat(path) for path in paths]

    async def delete_many(self, paths: Sequence[str]) -> None:
        """`delete` each path in order, skipping those already gone (or below a file)."""
        for path in paths:
            with contextlib.suppress(PathNotFound):
                await self.delete(path)

    async def delete_files(self, paths: Sequence[str]) -> None:
        """Delete these files (paths a listing gave as files), skipping those already gone;
        unlike `delete_many`, an object store need not list anything first. The
        directories they leave empty stay where directories exist (see `prune_many`)."""
        await self.delete_many(paths)

    async def delete_lone_files(self, paths: Sequence[str]) -> None:
        """Delete these files (a blob's `data`, a layer link), each alone in its directory,
        with that directory; those already gone are skipped. Object storage, where a
        directory is only a prefix of keys, deletes the keys without listing them."""
        await self.delete_many([path.rsplit("/", 1)[0] for path in paths])

    async def prune_many(self, paths: Sequence[str], stop: str) -> None:
        """Remove each of `paths` and then its parents, up to but not including `stop`, while
        they are empty directories (where directories exist at all): the first that is a file
        or has entries ends it, missing ones are passed over, and nothing that is not below
        `stop` is touched."""
        for path in paths:
            await self._prune(path, stop)

    async def _prune(self, path: str, stop: str) -> None:
        while path.startswith(stop.rstrip("/") + "/"):
            info = await self.stat(path)
            if info is not None:
                if not info.is_dir:
                    return  # a file is never pruned, nor the directories holding it
                try:
                    if await self.list(path):
                        return
                    await self.delete(path)
                except PathNotFound:
                    pass  # pruned meanwhile by someone else
            path = path.rsplit("/", 1)[0]

    async def files_below(self, path: str) -> Sequence[FileInfo] | None:
        """Every file below `path` (not directories), in no particular order, from a listing
        cheaper than `walk` (a few requests for a whole tree); None where the driver has
        none, and the caller should list directory by directory. Nothing if missing."""
        check_root_or_path(path)
        return None

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file and directory below `path` (not `path` itself), depth first, names
        in sorted order; nothing if `path` is missing (default: built on `list`)."""
        try:
            names = await self.list(path)
        except PathNotFound:
            return
        for name in sorted(names):
            child = f"{path.rstrip('/')}/{name}"
            info = await self.stat(child)
            if info is None:
                continue
            yield info
            if info.is_dir:
                async for below in self.walk(child):
                    yield below
