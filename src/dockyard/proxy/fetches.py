"""Blobs being fetched from an upstream: each is asked for once however many clients want
it, stored as it arrives, and streamed to every one of those clients from a spool file
while it is still coming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dockyard.proxy.routes import Route
from dockyard.registry.blobs import BlobStore
from dockyard.registry.reference import Digest
from dockyard.registry.uploads import RepositoryUploads

log = logging.getLogger("dockyard.proxy")

READ_SIZE = 256 * 1024

FetchKey = tuple[str, Digest]  # (repository, digest): a repository's own upstream check


class FetchFailed(Exception):
    """The fetch a reader followed stopped; the cause is chained."""


class BlobFetch:
    """One upstream GET of a blob for one repository. The bytes go to an upload in the
    repository (committed, so verified, when the last byte is in) and to a spool file that
    readers follow; the spool is removed when the fetch ends, and late readers then read
    the stored blob."""

    def __init__(self, digest: Digest, spool: Path, blobs: BlobStore) -> None:
        self.digest = digest
        self.spool = spool
        self.blobs = blobs
        self.size: int | None = None
        self.written = 0
        self.error: BaseException | None = None
        self.finished = False
        self.started = asyncio.Event()  # the upstream answered (or failed)
        self._progress = asyncio.Event()  # replaced after each wake-up

    def _notify(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def run(self, route: Route, uploads: RepositoryUploads) -> None:
        upload_id: str | None = None
        try:
            with self.spool.open("wb") as spool:
                async with route.upstream.open_blob(route.remote_name, str(self.digest)) \
                        as blob:
                    self.size = blob.size
                    self.started.set()
                    upload_id = (await uploads.start()).id

                    async def tee() -> AsyncIterator[bytes]:
                        async for chunk in blob.chunks:
                            spool.write(chunk)
                            spool.flush()
                            self.written += len(chunk)
                            self._notify()
                            yield chunk

                    await uploads.append(upload_id, tee())
                    if self.size is not None and self.written != self.size:
                        raise FetchFailed(f"the upstream sent {self.written} bytes of "
                                          f"{self.size}")
                    await uploads.commit(upload_id, self.digest, None)
                    upload_id = None
                    log.info("cached blob %s of %s (%d bytes)", self.digest,
                             route.remote_name, self.written)
        except BaseException as error:
            self.error = error
            log.warning("fetching blob %s of %s from %s failed: %s", self.digest,
                        route.remote_name, route.upstream.url, error)
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await uploads.cancel(upload_id)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            self.finished = True
            self.started.set()
            with contextlib.suppress(OSError):
                self.spool.unlink()
            self._notify()

    def read(self, offset: int, length: int | None) -> AsyncIterator[bytes]:
        """The blob's bytes from `offset` (`length` of them, or to the end) as they come."""
        return self._follow(offset, length)

    async def _follow(self, offset: int, length: int | None) -> AsyncIterator[bytes]:
        try:
            spool = self.spool.open("rb")
        except FileNotFoundError:
            if self.finished and self.error is None:  # stored by now
                async for chunk in self.blobs.read(self.digest, offset, length):
                    yield chunk
                return
            raise FetchFailed(f"fetching {self.digest} failed") from self.error
        with spool:
            position = offset
            end = None if length is None else offset + length
            while end is None or position < end:
                waiting = self._progress
                available = self.written if end is None else min(self.written, end)
                if position < available:
                    spool.seek(position)
                    data = spool.read(min(READ_SIZE, available - position))
                    position += len(data)
                    yield data
                    continue
                if self.error is not None:
                    raise FetchFailed(f"fetching {self.digest} failed") from self.error
                if self.finished:
                    if end is not None and position < end:
                        raise FetchFailed(f"{self.digest} ended at {position} bytes")
                    return
                await waiting.wait()


class Fetches:
    """The blob fetches under way in this process."""

    def __init__(self, spool_directory: Path, blobs: BlobStore) -> None:
        self.spool_directory = spool_directory
        self.blobs = blobs
        self._running: dict[FetchKey, BlobFetch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def join(self, route: Route, uploads: RepositoryUploads, digest: Digest) -> BlobFetch:
        """The fetch of `digest` for this repository: the one under way, or a new one."""
        key = (uploads.name, digest)
        fetch = self._running.get(key)
        if fetch is not None:
            return fetch
        self.spool_directory.mkdir(parents=True, exist_ok=True)
        spool = self.spool_directory / f"{digest.hex}.{uuid.uuid4().hex}"
        fetch = BlobFetch(digest, spool, self.blobs)
        self._running[key] = fetch
        # The fetch goes on when the client that started it goes away: the next pull
        # then finds the blob stored.
        task = asyncio.create_task(fetch.run(route, uploads))
        self._tasks.add(task)
        task.add_done_callback(self._done(key, fetch))
        return fetch

    def in_flight(self, name: str, digest: Digest) -> BlobFetch | None:
        return self._running.get((name, digest))

    def _done(self, key: FetchKey, fetch: BlobFetch) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self._running.get(key) is fetch:
                del self._running[key]
        return forget

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
