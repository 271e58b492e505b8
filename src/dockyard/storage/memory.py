"""In-memory driver: for tests and throwaway registries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from dockyard.storage.driver import FileInfo, FileWriter, PathNotFound, StorageDriver, check_path


class MemoryWriter(FileWriter):
    def __init__(self, files: dict[str, tuple[bytearray, float]], path: str) -> None:
        self._files = files
        self._path = path
        self._closed = False
        if path not in files:
            files[path] = (bytearray(), time.time())

    @property
    def size(self) -> int:
        return len(self._files[self._path][0])

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("write to a closed FileWriter")

    async def write(self, data: bytes) -> None:
        self._check_open()
        buffer, _ = self._files[self._path]
        buffer += data
        self._files[self._path] = (buffer, time.time())

    async def truncate(self, size: int) -> None:
        self._check_open()
        if size < 0:  # a negative slice would drop bytes from the end instead
            raise ValueError(f"negative size: {size}")
        del self._files[self._path][0][size:]

    async def close(self) -> None:
        self._closed = True


class MemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytearray, float]] = {}

    def _children(self, path: str) -> set[str]:
        prefix = path.rstrip("/") + "/"
        return {key[len(prefix):].split("/", 1)[0] for key in self._files if key.startswith(prefix)}

    async def get_content(self, path: str) -> bytes:
        try:
            return bytes(self._files[check_path(path)][0])
        except KeyError:
            raise PathNotFound(path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        self._files[check_path(path)] = (bytearray(data), time.time())

    async def stat(self, path: str) -> FileInfo | None:
        entry = self._files.get(check_path(path))
        if entry is not None:
            return FileInfo(path, len(entry[0]), entry[1], False)
        if self._children(path):
            return FileInfo(path, 0, time.time(), True)
        return None

    async def list(self, path: str) -> list[str]:
        children = self._children(path)
        if not children:
            raise PathNotFound(path)
        return sorted(children)

    async def move(self, source: str, destination: str) -> None:
        try:
            self._files[check_path(destination)] = self._files.pop(check_path(source))
        except KeyError:
            raise PathNotFound(source) from None

    async def delete(self, path: str) -> None:
        prefix = check_path(path).rstrip("/") + "/"
        doomed = [key for key in self._files if key == path or key.startswith(prefix)]
        if not doomed:
            raise PathNotFound(path)
        for key in doomed:
            del self._files[key]

    async def writer(self, path: str) -> FileWriter:
        return MemoryWriter(self._files, check_path(path))

    async def read(self, path: str, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        data = await self.get_content(path)
        end = len(data) if length is None else offset + length
        yield data[offset:end]
