"""Blob content (shared by every repository) and each repository's links to it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dockyard.index.base import Index, IndexWrite
from dockyard.registry import layout
from dockyard.registry.errors import BlobUnknown
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.links import read_link, write_link
from dockyard.registry.reference import Digest
from dockyard.storage import FileWriter, PathNotFound, StorageDriver

log = logging.getLogger("dockyard.registry")

# How long a blob's download URL stays valid: distribution's 20 minutes, long enough for a
# slow client to start (a transfer under way is not cut off when it expires).
DOWNLOAD_URL_LIFETIME = 20 * 60.0


@dataclass(frozen=True, slots=True)
class BlobDescriptor:
    digest: Digest
    size: int


class BlobStore:
    """Content-addressed data under /blobs; knows nothing of repositories."""

    def __init__(self, driver: StorageDriver, redirect: bool = False) -> None:
        self.driver = driver
        # Whether clients are sent to the storage for blob content, where it can take them.
        self.redirect = redirect

    async def size(self, digest: Digest) -> int | None:
        info = await self.driver.stat_file(layout.blob_data(digest))
        return None if info is None else info.size

    async def get(self, digest: Digest) -> bytes:
        try:
            return await self.driver.get_content(layout.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None

    async def put(self, data: bytes, digest: Digest) -> None:
        """Store small content (manifests) whose digest the caller has computed."""
        if await self.size(digest) is None:
            await self.driver.put_content(layout.blob_data(digest), data)

    async def adopt(self, source_path: str, digest: Digest, size: int) -> None:
        """Move verified upload data (`size` bytes) into place. A blob already stored under
        the digest wins, unless its size shows it cannot hash to that digest (a store
        damaged or written by something that did not verify): then the verified data
        replaces it."""
        existing = await self.size(digest)
        if existing is None or existing != size:
            if existing is not None:
                log.warning("blob %s held %d bytes, not the %d its verified upload has; "
                            "replaced by the verified data", digest, existing, size)
            await self.driver.move(source_path, layout.blob_data(digest))
        else:
            await self.driver.delete(source_path)

    async def adopt_writer(self, writer: FileWriter, digest: Digest, size: int) -> bool:
        """`adopt` verified upload data still in its writer, where that needs no move: a
        blob already stored under the digest with the upload's size wins (the writer is
        closed, its data left for the upload's removal), else the writer writes the blob's
        path itself if its driver can. False, with nothing done, where neither: the caller
        commits the writer and calls `adopt`."""
        existing = await self.size(digest)
        if existing == size:
            await writer.close()
            return True
        if not await writer.commit_to(layout.blob_data(digest)):
            return False
        if existing is not None:
            log.warning("blob %s held %d bytes, not the %d its verified upload has; "
                        "replaced by the verified data", digest, existing, size)
        return True

    def read(self, digest: Digest, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        return self.driver.read(layout.blob_data(digest), offset, length)

    async def download_url(self, digest: Digest) -> str | None:
        """Where a client can fetch the blob from the storage itself (ranges included), or
        None when the registry serves it: redirects disabled, or a driver with no URLs."""
        if not self.redirect:
            return None
        return await self.driver.url_for(layout.blob_data(digest), DOWNLOAD_URL_LIFETIME)


@dataclass(frozen=True, slots=True)
class OpenedBlob:
    """A blob about to be read: its size (None if not yet known) and its bytes."""

    digest: Digest
    size: int | None
    read: Callable[[int, int | None], AsyncIterator[bytes]]  # (offset, length)


class RepositoryBlobs:
    """The blobs one repository may serve: those it has a layer link for."""

    def __init__(self, name: str, blobs: BlobStore, index: Index,
                 events: EventLog = NO_EVENTS) -> None:
        self.name = name
        self.blobs = blobs
        self.driver = blobs.driver
        self.index = index
        self.events = events

    async def is_linked(self, digest: Digest) -> bool:
        return await read_link(self.driver, layout.layer_link(self.name, digest)) == digest

    async def describe(self, digest: Digest) -> BlobDescriptor:
        if not await self.is_linked(digest):
            raise BlobUnknown(detail={"digest": str(digest)})
        size = await self.blobs.size(digest)
        if size is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return BlobDescriptor(digest, size)

    async def open(self, digest: Digest) -> OpenedBlob:
        """The blob, to be read (BlobUnknown if this repository has none by that digest)."""
        blob = await self.describe(digest)

        def read(offset: int, length: int | None) -> AsyncIterator[bytes]:
            return self.blobs.read(digest, offset, length)

        return OpenedBlob(digest, blob.size, read)

    async def download_url(self, digest: Digest) -> str | None:
        """Where a client can fetch the blob from the storage itself (see BlobStore)."""
        return await self.blobs.download_url(digest)

    async def find(self, digest: Digest) -> BlobDescriptor | None:
        try:
            return await self.describe(digest)
        except BlobUnknown:
            return None

    async def link(self, digest: Digest, mounted_from: str | None = None) -> None:
        """Give this repository a blob the store has (refused if it is gone), mounted from
        another repository if named."""
        async with self.index.writing() as db:
            size = await self.blobs.size(digest)
            if size is None:
                raise BlobUnknown(detail={"digest": str(digest)})
            await self.link_within(db, digest)
            if mounted_from is not None:
                await db.add_events(self.events.blob("mount", self.name, str(digest), size,
                                                     mounted_from))

    async def link_within(self, db: IndexWrite, digest: Digest) -> None:
        """`link`, inside a write transaction the caller holds."""
        await write_link(self.driver, layout.layer_link(self.name, digest), digest)
        await db.link_layer(self.name, str(digest))

    async def unlink(self, digest: Digest) -> None:
        if not await self.is_linked(digest):
            raise BlobUnknown(detail={"digest": str(digest)})
        await self.driver.delete(layout.layer_link(self.name, digest).removesuffix("/link"))
        await self.index.remove_layer(self.name, str(digest),
                                      self.events.deleted(self.name, str(digest)))

    async def note_pulled(self, blob: BlobDescriptor) -> None:
        """A client was given the blob (or sent where to fetch it)."""
        if self.events.enabled:
            self.events.pulled(self.index, self.events.blob("pull", self.name,
                                                            str(blob.digest), blob.size))
