"""In-memory driver: for tests and throwaway registries.

It keeps directories as the filesystem driver does (made for the files written below them,
kept when emptied until pruned or deleted), so a registry cannot tell the two apart.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dockyard.storage.driver import (
    FileInfo,
    FileWriter,
    PathNotFound,
    StorageDriver,
    check_path,
    check_root_or_path,
)

# Reads are handed out in pieces of at most this much, as the filesystem driver's are.
READ_PIECE = 4 * 1024 * 1024


@dataclass
class _File:
    data: bytearray
    modified: float = field(default_factory=time.time)


@dataclass
class _Directory:
    children: set[str] = field(default_factory=set)
    modified: float = field(default_factory=time.time)


def _split(path: str) -> tuple[str, str]:
    """("/a/b", "c") for "/a/b/c"; ("/", "a") for "/a"."""
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def _below(path: str) -> str:
    return path.rstrip("/") + "/"


class MemoryWriter(FileWriter):
    """Appends to one file object: as with an open descriptor, a file moved meanwhile keeps
    growing where it went, and one replaced or deleted no longer shows the writes."""

    def __init__(self, file: _File) -> None:
        self._file = file
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._file.data)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("write to a closed FileWriter")

    async def write(self, data: bytes) -> None:
        self._check_open()
        self._file.data += data
        self._file.modified = time.time()

    async def truncate(self, size: int) -> None:
        self._check_open()
        if size < 0:  # a negative slice would drop bytes from the end instead
            raise ValueError(f"negative size: {size}")
        if size < len(self._file.data):
            del self._file.data[size:]
            self._file.modified = time.time()

    async def close(self) -> None:
        self._closed = True

    async def commit(self) -> None:
        """Nothing to assemble: every write already went to the file itself."""
        self._check_open()
        await self.close()


class MemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._directories: dict[str, _Directory] = {"/": _Directory()}
        # Every call finishes without awaiting, so one event loop needs no lock; threads
        # sharing a driver (as tests do) must not see a move or a delete half done.
        self._lock = threading.RLock()

    # Directories

    def _make_parents(self, path: str) -> _Directory:
        """The directory holding `path`, made with its missing parents; NotADirectoryError
        if a file stands where one of them should be."""
        parent = _split(path)[0]
        directory = self._directories.get(parent)
        if directory is None:
            if parent in self._files:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", parent)
            grandparent = self._make_parents(parent)
            directory = self._directories[parent] = _Directory()
            grandparent.children.add(_split(parent)[1])
            grandparent.modified = directory.modified
        return directory

    def _detach(self, path: str) -> None:
        directory = self._directories[_split(path)[0]]
        directory.children.discard(_split(path)[1])
        directory.modified = time.time()

    def _attach(self, path: str) -> None:
        directory = self._make_parents(path)
        directory.children.add(_split(path)[1])
        directory.modified = time.time()

    def _tree(self, path: str) -> list[str]:
        """`path` and every directory and file below it."""
        found = [path]
        directory = self._directories.get(path)
        if directory is not None:
            for name in directory.children:
                found.extend(self._tree(f"{_below(path)}{name}"))
        return found

    def _new_file(self, path: str, data: bytes) -> _File:
        if path in self._directories:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        self._attach(path)
        file = self._files[path] = _File(bytearray(data))
        return file

    # The interface

    async def get_content(self, path: str) -> bytes:
        file = self._files.get(check_path(path))
        if file is None:
            raise PathNotFound(path)
        return bytes(file.data)

    async def put_content(self, path: str, data: bytes) -> None:
        check_path(path)
        with self._lock:
            self._new_file(path, data)

    async def stat(self, path: str) -> FileInfo | None:
        check_root_or_path(path)
        with self._lock:
            file = self._files.get(path)
            if file is not None:
                return FileInfo(path, len(file.data), file.modified, False)
            directory = self._directories.get(path)
            if directory is not None:
                return FileInfo(path, 0, directory.modified, True)
            return None

    async def list(self, path: str) -> list[str]:
        check_root_or_path(path)
        with self._lock:
            directory = self._directories.get(path)
            if directory is None:
                raise PathNotFound(path)
            return sorted(directory.children)

    async def move(self, source: str, destination: str) -> None:
        check_path(source)
        check_path(destination)
        with self._lock:
            if source in self._files:
                if destination in self._directories:
                    raise IsADirectoryError(errno.EISDIR, "is a directory", destination)
                file = self._files[source]
                self._attach(destination)
                self._files[destination] = file  # readers see the old file or this one
                if destination != source:
                    del self._files[source]
                    self._detach(source)
            elif source in self._directories:
                self._move_directory(source, destination)
            else:
                raise PathNotFound(source)

    def _move_directory(self, source: str, destination: str) -> None:
        if destination == source:
            return
        if destination.startswith(_below(source)):
            raise OSError(errno.EINVAL, "cannot move a directory below itself", destination)
        if destination in self._files:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", destination)
        existing = self._directories.get(destination)
        if existing is not None:
            if existing.children:
                raise OSError(errno.ENOTEMPTY, "directory not empty", destination)
            del self._directories[destination]
        self._attach(destination)
        for old in self._tree(source):
            new = destination + old[len(source):]
            if old in self._files:
                self._files[new] = self._files.pop(old)
            else:
                self._directories[new] = self._directories.pop(old)
        self._detach(source)

    async def delete(self, path: str) -> None:
        check_path(path)
        with self._lock:
            if path not in self._files and path not in self._directories:
                raise PathNotFound(path)
            for doomed in self._tree(path):
                self._files.pop(doomed, None)
                self._directories.pop(doomed, None)
            self._detach(path)

    async def writer(self, path: str) -> FileWriter:
        check_path(path)
        with self._lock:
            file = self._files.get(path)
            return MemoryWriter(file if file is not None else self._new_file(path, b""))

    async def read(self, path: str, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        data = await self.get_content(path)
        end = len(data) if length is None else min(len(data), offset + length)
        for start in range(offset, end, READ_PIECE):
            yield data[start:min(end, start + READ_PIECE)]
