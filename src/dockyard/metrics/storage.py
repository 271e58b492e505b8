"""distribution's storage metric, `registry_storage_action_seconds{action,driver}`: how long
the storage driver's calls take, by distribution's name of the call.

`TimedDriver` wraps the server's driver only when metrics are on. It times the calls that
distribution times (GetContent, PutContent, Stat, List, Move, Delete, URLFor) and passes
the rest straight through: streams (`read`, `writer`), whose time is the client's as much
as the storage's, and the bulk calls of garbage collection, which distribution has none of."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from dockyard.metrics import histogram, tally
from dockyard.storage.driver import FileInfo, FileWriter, StorageDriver

# The Go client's default buckets, which distribution's timer keeps.
BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
ACTIONS = ("GetContent", "PutContent", "Stat", "List", "Move", "Delete", "URLFor")

_family: Any = None


def _actions(driver: str) -> dict[str, tally.HistogramTally]:
    """Timings kept in the worker's tallies (metrics.tally): a request makes several calls."""
    global _family
    if _family is None:
        _family = histogram("registry_storage_action_seconds", "The number of seconds that "
                            "the storage action takes", ["driver", "action"], BUCKETS)
    return {action: tally.histogram(_family.labels(driver, action)) for action in ACTIONS}


class TimedDriver(StorageDriver):
    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        timers = _actions(inner.name)
        self._get, self._put, self._stat = (timers["GetContent"], timers["PutContent"],
                                            timers["Stat"])
        self._list, self._move, self._delete, self._url = (
            timers["List"], timers["Move"], timers["Delete"], timers["URLFor"])

    async def get_content(self, path: str) -> bytes:
        started = time.perf_counter()
        try:
            return await self.inner.get_content(path)
        finally:
            self._get.observe(time.perf_counter() - started)

    async def put_content(self, path: str, data: bytes) -> None:
        started = time.perf_counter()
        try:
            await self.inner.put_content(path, data)
        finally:
            self._put.observe(time.perf_counter() - started)

    async def stat(self, path: str) -> FileInfo | None:
        started = time.perf_counter()
        try:
            return await self.inner.stat(path)
        finally:
            self._stat.observe(time.perf_counter() - started)

    async def stat_file(self, path: str) -> FileInfo | None:
        started = time.perf_counter()
        try:
            return await self.inner.stat_file(path)
        finally:
            self._stat.observe(time.perf_counter() - started)

    async def stat_writer(self, path: str) -> FileInfo | None:
        started = time.perf_counter()
        try:
            return await self.inner.stat_writer(path)
        finally:
            self._stat.observe(time.perf_counter() - started)

    async def list(self, path: str) -> list[str]:
        started = time.perf_counter()
        try:
            return await self.inner.list(path)
        finally:
            self._list.observe(time.perf_counter() - started)

    async def move(self, source: str, destination: str) -> None:
        started = time.perf_counter()
        try:
            await self.inner.move(source, destination)
        finally:
            self._move.observe(time.perf_counter() - started)

    async def delete(self, path: str) -> None:
        started = time.perf_counter()
        try:
            await self.inner.delete(path)
        finally:
            self._delete.observe(time.perf_counter() - started)

    async def url_for(self, path: str, expires: float) -> str | None:
        started = time.perf_counter()
        try:
            return await self.inner.url_for(path, expires)
        finally:
            self._url.observe(time.perf_counter() - started)

    # Untimed: straight to the driver, so its own versions (batches, S3's shortcuts) run.
    async def writer(self, path: str) -> FileWriter:
        return await self.inner.writer(path)

    async def new_writer(self, path: str) -> FileWriter:
        return await self.inner.new_writer(path)

    async def reopen(self, path: str) -> FileWriter | None:
        return await self.inner.reopen(path)

    def read(self, path: str, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        return self.inner.read(path, offset, length)

    async def close(self) -> None:
        await self.inner.close()

    async def free_space(self) -> int | None:
        return await self.inner.free_space()

    async def stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        return await self.inner.stat_many(paths)

    async def delete_many(self, paths: Sequence[str]) -> None:
        await self.inner.delete_many(paths)

    async def delete_files(self, paths: Sequence[str]) -> None:
        await self.inner.delete_files(paths)

    async def delete_lone_files(self, paths: Sequence[str]) -> None:
        await self.inner.delete_lone_files(paths)

    async def prune_many(self, paths: Sequence[str], stop: str) -> None:
        await self.inner.prune_many(paths, stop)

    async def files_below(self, path: str) -> Sequence[FileInfo] | None:
        return await self.inner.files_below(path)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return self.inner.walk(path)
