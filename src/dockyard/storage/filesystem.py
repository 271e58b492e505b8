"""Filesystem driver: the same tree distribution writes under its root directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
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
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def _full(self, path: str) -> str:
        return self.root + check_path(path)

    async def get_content(self, path: str) -> bytes:
        try:
            with open(self._full(path), "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
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
            result = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        is_dir = os.path.isdir(self._full(path))
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
            file = open(self._full(path), "rb")  # noqa: SIM115 - closed below
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
        return self._full(path)
