"""Filesystem driver: the same tree distribution writes under its root directory."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import AsyncIterator

from dockyard.storage.driver import FileInfo, FileWriter, PathNotFound, StorageDriver, check_path

# Reads and writes this large leave the event loop for a thread; smaller ones are cheaper inline.
THREAD_THRESHOLD = 256 * 1024
READ_CHUNK = 1024 * 1024


class FilesystemWriter(FileWriter):
    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes) -> None:
        if len(data) >= THREAD_THRESHOLD:
            await asyncio.to_thread(self._write_all, data)
        else:
            self._write_all(data)
        self._size += len(data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)

    def _full(self, path: str) -> str:
        return self.root + check_path(path)

    def _inside(self, path: str) -> str:
        """The full path, if following every link in it stays inside the root; a symlink in
        the store that points elsewhere reads as missing."""
        full = self._full(path)
        if not os.path.realpath(full).startswith(self.root + os.sep):
            raise PathNotFound(path)
        return full

    async def get_content(self, path: str) -> bytes:
        # Small metadata files are read on every request: O_NOFOLLOW refuses a symlinked
        # file for free; data files (`read`, `local_file`) get the full check.
        try:
            fd = os.open(self._full(path), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise PathNotFound(path) from None
            raise
        with os.fdopen(fd, "rb") as file:
            try:
                return file.read()
            except IsADirectoryError:
                raise PathNotFound(path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        full = self._full(path)
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        # Write beside the target and rename over it: a crash never leaves a torn file.
        temporary = f"{full}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
            os.replace(temporary, full)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def stat(self, path: str) -> FileInfo | None:
        try:
            result = os.lstat(self._inside(path))
        except (FileNotFoundError, NotADirectoryError, PathNotFound):
            return None
        if stat.S_ISLNK(result.st_mode):
            return None
        is_dir = stat.S_ISDIR(result.st_mode)
        return FileInfo(path, 0 if is_dir else result.st_size, result.st_mtime, is_dir)

    async def list(self, path: str) -> list[str]:
        full = self.root if path == "/" else self._full(path)
        try:
            return [name for name in os.listdir(full) if not name.endswith(".tmp")]
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None

    async def move(self, source: str, destination: str) -> None:
        full_destination = self._full(destination)
        os.makedirs(os.path.dirname(full_destination), exist_ok=True)
        try:
            os.replace(self._full(source), full_destination)
        except FileNotFoundError:
            raise PathNotFound(source) from None

    async def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                # Most directories deleted are a blob's or a link's (one file): inline is
                # cheaper than a thread; bigger trees go to a thread.
                entries = os.listdir(full)
                if len(entries) <= 2 and all(
                        not os.path.isdir(os.path.join(full, entry)) for entry in entries):
                    shutil.rmtree(full)
                else:
                    await asyncio.to_thread(shutil.rmtree, full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            raise PathNotFound(path) from None

    async def writer(self, path: str) -> FileWriter:
        full = self._full(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return FilesystemWriter(fd, os.fstat(fd).st_size)

    async def read(self, path: str, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        try:
            file = open(self._inside(path), "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        try:
            file.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(file.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            file.close()

    def local_file(self, path: str) -> str | None:
        try:
            return self._inside(path)
        except PathNotFound:
            return None
