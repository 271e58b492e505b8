"""Blobs being fetched from an upstream: each is asked for once however many clients want
it, in this worker or the others of the host, stored as it arrives, and streamed to every
one of those clients from a spool file while it is still coming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.proxy import spool
from dockyard.proxy.metrics import PROXY_FETCHED_BYTES, PROXY_FETCHES, count_failure
from dockyard.proxy.routes import Route
from dockyard.proxy.upstream import UpstreamError
from dockyard.registry.blobs import BlobStore
from dockyard.registry.reference import Digest
from dockyard.registry.uploads import RepositoryUploads

log = logging.getLogger("dockyard.proxy")

READ_SIZE = 256 * 1024
# How often a worker following another's fetch looks at the spool again.
POLL_INTERVAL = 0.02

FetchKey = tuple[str, Digest]  # (repository, digest): a repository's own upstream check


class FetchFailed(Exception):
    """The fetch a reader followed stopped; the cause is chained where known."""


@dataclass(frozen=True, slots=True)
class FetchedBlob:
    """A blob on its way from the upstream: its size (None: the upstream did not say)
    and its bytes from an offset, as they arrive."""

    size: int | None
    read: Callable[[int, int | None], AsyncIterator[bytes]]


class BlobFetch:
    """This worker's upstream GET of a blob for one repository. The bytes go to an upload
    in the repository (committed, so verified, when the last byte is in) and to the spool
    that readers follow; the spool is removed when the fetch ends, and late readers then
    read the stored blob."""

    def __init__(self, digest: Digest, path: Path, fd: int, blobs: BlobStore) -> None:
        self.digest = digest
        self.path = path
        self.fd = fd
        self.blobs = blobs
        self.size: int | None = None
        self.written = 0
        self.error: BaseException | None = None
        self.finished = False
        self.started = asyncio.Event()  # the upstream answered (or the fetch failed)
        self._progress = asyncio.Event()  # replaced after each wake-up

    def _notify(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def run(self, route: Route, uploads: RepositoryUploads) -> None:
        upload_id: str | None = None
        try:
            async with route.upstream.open_blob(route.remote_name, str(self.digest)) as blob:
                self.size = blob.size
                spool.write_size(self.path, blob.size)
                self.started.set()
                upload_id = (await uploads.start()).id

                async def tee() -> AsyncIterator[bytes]:
                    async for chunk in blob.chunks:
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(self.fd, view):]
                        self.written += len(chunk)
                        self._notify()
                        yield chunk

                await uploads.append(upload_id, tee())
                if self.size is not None and self.written != self.size:
                    raise FetchFailed(f"the upstream sent {self.written} bytes of {self.size}")
                await uploads.commit(upload_id, self.digest, None)
                upload_id = None
                log.info("cached blob %s of %s (%d bytes)", self.digest, route.remote_name,
                         self.written)
                PROXY_FETCHES.labels(route.upstream.url, "blob").inc()
                PROXY_FETCHED_BYTES.labels(route.upstream.url).inc(self.written)
        except BaseException as error:
            self.error = error
            log.warning("fetching blob %s of %s from %s failed: %s", self.digest,
                        route.remote_name, route.upstream.url, error)
            if isinstance(error, UpstreamError):
                count_failure(route.upstream.url, error)
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await uploads.cancel(upload_id)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            self.finished = True
            self.started.set()
            spool.release(self.path, self.fd)
            self._notify()

    def read(self, offset: int, length: int | None) -> AsyncIterator[bytes]:
        return self._follow(offset, length)

    async def _follow(self, offset: int, length: int | None) -> AsyncIterator[bytes]:
        try:
            reader = self.path.open("rb")
        except FileNotFoundError:
            if self.finished and self.error is None:  # stored by now
                async for chunk in self.blobs.read(self.digest, offset, length):
                    yield chunk
                return
            raise FetchFailed(f"fetching {self.digest} failed") from self.error
        with reader:
            position = offset
            end = None if length is None else offset + length
            while end is None or position < end:
                waiting = self._progress
                available = self.written if end is None else min(self.written, end)
                if position < available:
                    reader.seek(position)
                    data = reader.read(min(READ_SIZE, available - position))
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


class SharedFetch:
    """Another worker's fetch of a blob, followed through its spool: the bytes as the
    file grows; when its worker lets go, the rest from the store (where it put the blob)
    or, if it is not there, a failure."""

    def __init__(self, digest: Digest, path: Path, blobs: BlobStore) -> None:
        self.digest = digest
        self.path = path
        self.blobs = blobs
        self.fd = os.open(path, os.O_RDONLY)  # FileNotFoundError: that fetch has ended
        self.size: int | None = None

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self.fd)

    async def wait_for_size(self) -> bool:
        """Wait until the fetching worker says how big the blob is; False if it stopped
        before it could."""
        while True:
            known, size = spool.read_size(self.path)
            if known:
                self.size = size
                return True
            if spool.claimant_gone(self.fd):
                return False
            await asyncio.sleep(POLL_INTERVAL)

    async def read(self, offset: int, length: int | None) -> AsyncIterator[bytes]:
        position = offset
        end = (None if self.size is None else self.size) if length is None \
            else offset + length
        while end is None or position < end:
            available = os.fstat(self.fd).st_size
            if end is not None:
                available = min(available, end)
            if position < available:
                data = await asyncio.to_thread(
                    os.pread, self.fd, min(READ_SIZE, available - position), position)
                position += len(data)
                yield data
                continue
            if not spool.claimant_gone(self.fd):
                await asyncio.sleep(POLL_INTERVAL)
                continue
            if os.fstat(self.fd).st_size > position:
                continue  # written just before it let go
            stored = await self.blobs.size(self.digest)
            if stored is None or (self.size is not None and stored != self.size):
                raise FetchFailed(f"the fetch of {self.digest} by another worker stopped "
                                  f"at {position} bytes")
            if end is None or position < end:
                remaining = None if end is None else end - position
                async for chunk in self.blobs.read(self.digest, position, remaining):
                    yield chunk
            return


class Fetches:
    """The blob fetches of this worker, and the way to those of the host's others."""

    def __init__(self, spool_directory: Path, blobs: BlobStore) -> None:
        self.spool_directory = spool_directory
        self.blobs = blobs
        self._running: dict[FetchKey, BlobFetch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def in_flight(self, name: str, digest: Digest) -> BlobFetch | None:
        return self._running.get((name, digest))

    async def open(self, route: Route, uploads: RepositoryUploads, digest: Digest
                   ) -> FetchedBlob:
        """The blob as fetched for this repository: by the fetch under way in this worker
        or another, else by a new one. UpstreamError if the upstream refuses it."""
        for _ in range(5):
            fetch: BlobFetch | SharedFetch | None = self._running.get((uploads.name, digest))
            if fetch is None:
                fetch = self._start(route, uploads, digest)
            if isinstance(fetch, BlobFetch):
                await fetch.started.wait()
                if fetch.error is not None and fetch.size is None:
                    if isinstance(fetch.error, UpstreamError):
                        raise fetch.error
                    raise FetchFailed(str(fetch.error)) from fetch.error
                return FetchedBlob(fetch.size, fetch.read)
            if await fetch.wait_for_size():
                return FetchedBlob(fetch.size, fetch.read)
            # The other worker stopped before the upstream answered: ask again.
        raise FetchFailed(f"could not start fetching {digest}")

    def _start(self, route: Route, uploads: RepositoryUploads, digest: Digest
               ) -> BlobFetch | SharedFetch:
        self.spool_directory.mkdir(parents=True, exist_ok=True)
        path = spool.spool_path(self.spool_directory, uploads.name, digest)
        fd = spool.claim(path)
        if fd is None:
            try:
                return SharedFetch(digest, path, self.blobs)
            except FileNotFoundError:
                fd = spool.claim(path)  # it ended as we looked: try to be the one
                if fd is None:
                    return SharedFetch(digest, path, self.blobs)
        key = (uploads.name, digest)
        fetch = BlobFetch(digest, path, fd, self.blobs)
        self._running[key] = fetch
        # The fetch goes on when the client that started it goes away: the next pull
        # then finds the blob stored.
        task = asyncio.create_task(fetch.run(route, uploads))
        self._tasks.add(task)
        task.add_done_callback(self._done(key, fetch))
        return fetch

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
