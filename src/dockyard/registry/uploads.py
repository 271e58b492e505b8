"""Blob uploads: started, appended in chunks or streamed, then committed by digest.

Upload state lives in storage (`_uploads/<id>/data` and `startedat`), so any worker can take
the next chunk: each chunk opens a writer of the data, which `close` leaves for the next one
to continue (on S3, an open multipart upload), and the commit makes it whole with `commit`
(or, where the driver can, writes it straight to the blob's path with `commit_to`).
Each process also keeps the running hash of uploads it has been appending to, and the hash
state after each chunk is saved beside the data, keyed by the size it describes.

Everything that changes an upload (a chunk, the commit, a cancel, purging) holds the upload's
lock, which every process on the store respects. So a saved state for size N always hashes
exactly the first N bytes of the file: only the holder writes, it saves the state after its
data, and a chunk that fails cuts the file back to where that chunk began, which no one else
can have moved meanwhile. Without that, two chunks interleaved across workers could leave the
state of one chunk's bytes beside the other's, and commit bytes under a digest they lack.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from dockyard.index.base import Index, IndexWrite
from dockyard.index.locks import LockTimeout
from dockyard.registry import layout
from dockyard.registry.blobs import BlobDescriptor, BlobStore, RepositoryBlobs
from dockyard.registry.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    SizeInvalid,
    TooManyRequests,
    UploadOutOfOrder,
)
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.hashing import Hasher, ResumableSHA256, new_hasher
from dockyard.registry.reference import Digest
from dockyard.storage import FileWriter, PathNotFound, StorageDriver

UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Body bytes are gathered into buffers this large before one write and one hash update,
# which run side by side in two threads.
WRITE_BUFFER = 4 * 1024 * 1024
# How many in-progress hashes a process remembers.
MAX_CACHED_HASHERS = 1024
# How long a request waits for another one writing to the same upload before a 429.
LOCK_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    size: int


@dataclass(slots=True)
class _RunningHash:
    size: int
    hasher: Hasher


class UploadStore:
    def __init__(self, blobs: BlobStore, index: Index, max_per_repository: int = 1000,
                 events: EventLog = NO_EVENTS) -> None:
        self.blobs = blobs
        self.index = index
        self.events = events
        self.max_per_repository = max_per_repository
        self.driver: StorageDriver = blobs.driver
        self._hashes: OrderedDict[tuple[str, str], _RunningHash] = OrderedDict()

    def for_repository(self, name: str) -> RepositoryUploads:
        return RepositoryUploads(name, self)

    # The running-hash cache, shared by every repository of this process.
    def take_hash(self, key: tuple[str, str], size: int) -> Hasher | None:
        running = self._hashes.pop(key, None)
        if running is None or running.size != size:
            return None
        return running.hasher

    def keep_hash(self, key: tuple[str, str], size: int, hasher: Hasher) -> None:
        self._hashes[key] = _RunningHash(size, hasher)
        while len(self._hashes) > MAX_CACHED_HASHERS:
            self._hashes.popitem(last=False)

    @contextlib.asynccontextmanager
    async def lock(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """Hold the upload, in this process and every other one on the store."""
        try:
            async with self.index.locks.hold(upload_lock_key(*key), LOCK_WAIT):
                yield
        except LockTimeout:
            raise TooManyRequests("another request is still writing to this upload",
                                  {"uuid": key[1][:200]}) from None

    def forget(self, key: tuple[str, str]) -> None:
        self._hashes.pop(key, None)


class RepositoryUploads:
    def __init__(self, name: str, store: UploadStore) -> None:
        self.name = name
        self.store = store
        self.driver = store.driver

    def _key(self, upload_id: str) -> tuple[str, str]:
        return (self.name, upload_id)

    async def start(self) -> UploadStatus:
        try:
            open_uploads = len(await self.driver.list(layout.uploads(self.name)))
        except PathNotFound:
            open_uploads = 0
        if open_uploads >= self.store.max_per_repository:
            # Each open upload holds disk; abandoned ones go with upload purging.
            raise TooManyRequests(
                f"{open_uploads} uploads are already in progress for this repository",
                {"limit": self.store.max_per_repository})
        upload_id = str(uuid.uuid4())
        started = datetime.now(UTC)
        await self.driver.put_content(
            layout.upload_started_at(self.name, upload_id),
            started.strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
        )
        writer = await self.driver.new_writer(layout.upload_data(self.name, upload_id))
        await writer.close()
        self.store.keep_hash(self._key(upload_id), 0, ResumableSHA256())
        return UploadStatus(upload_id, 0)

    async def status(self, upload_id: str) -> UploadStatus:
        _check_upload_id(upload_id)
        info = await self.driver.stat_writer(layout.upload_data(self.name, upload_id))
        if info is None or info.is_dir:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        return UploadStatus(upload_id, info.size)

    async def _reopen(self, upload_id: str) -> FileWriter:
        """The writer continuing the upload's data; BlobUploadUnknown if there is none (a
        writer of its own would make one)."""
        _check_upload_id(upload_id)
        writer = await self.driver.reopen(layout.upload_data(self.name, upload_id))
        if writer is None:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        return writer

    async def append(
        self,
        upload_id: str,
        body: AsyncIterable[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        """Append a chunk. `start` (from Content-Range) must be where the upload ends now;
        `length` (from Content-Length) must match what arrives. A failed chunk is undone."""
        key = self._key(upload_id)
        async with self.store.lock(key):
            writer = await self._reopen(upload_id)
            if start is not None and start != writer.size:
                await writer.close()
                raise UploadOutOfOrder(
                    f"chunk starts at {start} but the upload has {writer.size} bytes",
                    {"expected_start": writer.size, "start": start},
                )
            size = await self._append_locked(writer, upload_id, body, length)
        return UploadStatus(upload_id, size)

    async def _append_locked(
        self, writer: FileWriter, upload_id: str, body: AsyncIterable[bytes],
        length: int | None
    ) -> int:
        size = writer.size
        hasher, received = await self._write_chunk(writer, upload_id, size, body, length)
        await writer.close()
        await self._keep_hash(upload_id, size, size + received, hasher)
        return size + received

    async def _write_chunk(
        self, writer: FileWriter, upload_id: str, size: int, body: AsyncIterable[bytes],
        length: int | None
    ) -> tuple[Hasher | None, int]:
        """Write a chunk after the upload's `size` bytes, with the running hash; a chunk
        that fails is cut off again (the writer closed) so the client can send it again."""
        hasher = await self._running_hash(upload_id, size)
        received = 0
        try:
            async for buffer in _buffered(body, WRITE_BUFFER):
                received += len(buffer)
                if length is not None and received > length:
                    raise SizeInvalid("body is longer than Content-Length",
                                      {"content_length": length})
                await _write_and_hash(writer, hasher, buffer)
            if length is not None and received != length:
                raise SizeInvalid("body is shorter than Content-Length",
                                  {"content_length": length, "received": received})
        except BaseException:
            # Leave the upload as it was before this chunk so the client can send it again.
            with contextlib.suppress(Exception):
                await writer.truncate(size)
            await writer.close()
            raise
        return hasher, received

    async def _keep_hash(self, upload_id: str, old_size: int, size: int,
                         hasher: Hasher | None) -> None:
        if hasher is not None:
            self.store.keep_hash(self._key(upload_id), size, hasher)
            await self._save_hash(upload_id, old_size, size, hasher)

    async def _running_hash(self, upload_id: str, size: int) -> Hasher | None:
        """The hash of the first `size` bytes: this process's, or the state saved beside
        the upload by whichever worker took the last chunk; None if neither is there."""
        hasher = self.store.take_hash(self._key(upload_id), size)
        if hasher is not None:
            return hasher
        if size == 0:
            return ResumableSHA256()
        try:
            state = await self.driver.get_content(layout.upload_hash_state(self.name, upload_id,
                                                                           size))
        except PathNotFound:
            return None
        return ResumableSHA256.restore(state)

    async def _save_hash(self, upload_id: str, old_size: int, size: int, hasher: Hasher
                         ) -> None:
        if not isinstance(hasher, ResumableSHA256):
            return
        await self.driver.put_content(layout.upload_hash_state(self.name, upload_id, size),
                                      hasher.save())
        if old_size and old_size != size:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(layout.upload_hash_state(self.name, upload_id,
                                                                  old_size))

    async def commit(
        self, upload_id: str, digest: Digest, body: AsyncIterable[bytes] | None,
        length: int | None = None,
    ) -> BlobDescriptor:
        """Finish an upload: append a last chunk, verify the digest, make the blob visible."""
        key = self._key(upload_id)
        async with self.store.lock(key):
            writer = await self._reopen(upload_id)
            size = opened_size = writer.size
            data_path = layout.upload_data(self.name, upload_id)
            hasher = None
            if body is not None:
                hasher, received = await self._write_chunk(writer, upload_id, size, body,
                                                           length)
                size += received
            else:
                hasher = await self._running_hash(upload_id, size)
            if hasher is not None and hasher.name == digest.algorithm:
                # Checked before the data is made whole, so a wrong digest leaves the
                # upload open to go on.
                actual = Digest(digest.algorithm, hasher.hexdigest())  # state kept
                if actual != digest:
                    await writer.close()
                    await self._keep_hash(upload_id, opened_size, size, hasher)
                    raise DigestInvalid(detail={"expected": str(digest),
                                                "actual": str(actual)})
                # Straight to the blob's path where the driver can (a small blob on S3:
                # one PUT rather than a PUT, a copy and a delete).
                async with self.store.index.writing() as db:
                    placed = await self.store.blobs.adopt_writer(writer, digest, size)
                    if placed:
                        await self._record(db, digest, size)
                if placed:
                    await self._remove(upload_id)
                    self.store.forget(key)
                    return BlobDescriptor(digest, size)
                await writer.commit()
            else:
                await writer.commit()
                if body is not None:
                    await self._keep_hash(upload_id, opened_size, size, hasher)
                actual = await self._digest_of(upload_id, size, digest.algorithm)
                if actual != digest:
                    raise DigestInvalid(detail={"expected": str(digest),
                                                "actual": str(actual)})
            # Made visible and recorded in one transaction, before the client hears 201,
            # so garbage collection sees the blob as fresh from the moment it exists.
            async with self.store.index.writing() as db:
                await self.store.blobs.adopt(data_path, digest, size)
                await self._record(db, digest, size)
            await self._remove(upload_id)
        self.store.forget(key)
        return BlobDescriptor(digest, size)

    async def _record(self, db: IndexWrite, digest: Digest, size: int) -> None:
        """Index a blob just made visible and link it to this repository."""
        await db.record_blob(str(digest), size)
        await RepositoryBlobs(self.name, self.store.blobs, self.store.index).link_within(
            db, digest)
        await db.add_events(self.store.events.blob("push", self.name, str(digest), size))

    async def _digest_of(self, upload_id: str, size: int, algorithm: str) -> Digest:
        hasher = await self._running_hash(upload_id, size)
        if hasher is None or hasher.name != algorithm:
            hasher = new_hasher(algorithm)
            async for chunk in self.driver.read(layout.upload_data(self.name, upload_id)):
                await _update_hash(hasher, chunk)
        return Digest(algorithm, hasher.hexdigest())

    async def cancel(self, upload_id: str) -> None:
        key = self._key(upload_id)
        async with self.store.lock(key):
            await self.status(upload_id)
            await self._remove(upload_id)
        self.store.forget(key)

    async def _remove(self, upload_id: str) -> None:
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(layout.upload_dir(self.name, upload_id))


async def _buffered(body: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Regroup a body's (often small) chunks into buffers of about `size` bytes."""
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in body:
        if not chunk:
            continue
        if not pending and len(chunk) >= size:
            yield chunk
            continue
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= size:
            yield b"".join(pending)
            pending, pending_size = [], 0
    if pending:
        yield b"".join(pending)


async def _update_hash(hasher: Hasher, data: bytes) -> None:
    # hashlib releases the GIL for large buffers, so a thread hashes while the loop serves.
    if len(data) >= 256 * 1024:
        await asyncio.to_thread(hasher.update, data)
    else:
        hasher.update(data)


async def _write_and_hash(writer: FileWriter, hasher: Hasher | None, data: bytes) -> None:
    if hasher is None:
        await writer.write(data)
    else:
        await asyncio.gather(writer.write(data), _update_hash(hasher, data))



def _check_upload_id(upload_id: str) -> None:
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise BlobUploadUnknown(detail={"uuid": upload_id[:200]})


def upload_lock_key(name: str, upload_id: str) -> str:
    return f"{name}/_uploads/{upload_id}"


async def read_started_at(driver: StorageDriver, name: str, upload_id: str) -> datetime | None:
    try:
        text = await driver.get_content(layout.upload_started_at(name, upload_id))
        return datetime.fromisoformat(text.decode().strip().replace("Z", "+00:00"))
    except (PathNotFound, ValueError, UnicodeDecodeError):
        return None
