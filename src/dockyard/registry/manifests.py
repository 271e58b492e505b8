"""Manifest revisions of a repository: stored as blobs, reachable through revision links."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass

from dockyard.config.limits import DEFAULT_MAX_MANIFEST_SIZE
from dockyard.index.base import Index, ManifestRecord
from dockyard.registry import layout, mediatypes, schema1
from dockyard.registry.blobs import BlobStore, RepositoryBlobs
from dockyard.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    TooLarge,
)
from dockyard.registry.events import NO_EVENTS, EventLog, references_in
from dockyard.registry.links import read_link, write_link
from dockyard.registry.manifest import (
    Manifest,
    parse_manifest,
    references_of,
    stored_media_type,
)
from dockyard.registry.reference import Digest, is_tag
from dockyard.registry.tags import RepositoryTags
from dockyard.storage import PathNotFound

# Manifests up to this size are hashed and parsed on the event loop (well under a
# millisecond; the common case, where a thread hand-off would cost more). Larger ones, up
# to tens of thousands of descriptors, take a thread, so other requests go on meanwhile.
INLINE_PARSE_LIMIT = 64 * 1024
# Checking a manifest's references lets other requests in after this many lookups.
CHECKS_PER_TURN = 256


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    data: bytes
    # When the reference was last pushed (its link's mtime): a tag's own push, or for a
    # digest the last push of that manifest. None where the store cannot say.
    modified: float | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    manifest: Manifest


class ManifestCache:
    """The bytes and media type of manifests a process has served, by repository and digest.

    What a digest names never changes, so entries never go stale; what can change (which
    digest a tag names, whether the revision still exists) is always read from the store.
    That keeps every worker correct without telling the others anything."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[tuple[str, Digest], tuple[str, bytes]] = OrderedDict()

    def get(self, name: str, digest: Digest) -> tuple[str, bytes] | None:
        entry = self._entries.get((name, digest))
        if entry is not None:
            self._entries.move_to_end((name, digest))
        return entry

    def put(self, name: str, digest: Digest, media_type: str, data: bytes) -> None:
        if len(data) > self.max_bytes // 16:
            return
        previous = self._entries.pop((name, digest), None)
        if previous is not None:
            self.size -= len(previous[1])
        self._entries[(name, digest)] = (media_type, data)
        self.size += len(data)
        while self.size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= len(evicted)


class RepositoryManifests:
    def __init__(
        self,
        name: str,
        blobs: BlobStore,
        tags: RepositoryTags,
        cache: ManifestCache,
        index: Index,
        max_size: int = DEFAULT_MAX_MANIFEST_SIZE,
        events: EventLog = NO_EVENTS,
    ) -> None:
        self.name = name
        self.events = events
        self.blobs = blobs
        self.driver = blobs.driver
        self.tags = tags
        self.cache = cache
        self.max_size = max_size
        self.index = index
        self.layers = RepositoryBlobs(name, blobs, index)

    async def resolve(self, reference: str) -> Digest:
        """The digest a tag or digest reference names, if this repository has it."""
        if is_tag(reference):
            digest = await self.tags.resolve(reference)
        else:
            digest = Digest.parse(reference)
        if not await self.exists(digest):
            raise ManifestUnknown(detail={"reference": reference})
        return digest

    async def exists(self, digest: Digest) -> bool:
        return await read_link(self.driver, layout.revision_link(self.name, digest)) == digest

    async def get(self, reference: str) -> StoredManifest:
        digest = await self.resolve(reference)
        cached = self.cache.get(self.name, digest)
        if cached is not None:
            media_type, data = cached
        else:
            try:
                data = await self.blobs.get(digest)
            except BlobUnknown:
                raise ManifestUnknown(detail={"reference": reference}) from None
            media_type = await self._media_type(digest, data)
            self.cache.put(self.name, digest, media_type, data)
        modified = await self._pushed_at(reference, digest)
        if media_type in mediatypes.SCHEMA1 and schema1.needs_signature(data):
            return StoredManifest(digest, mediatypes.DOCKER_SCHEMA1_SIGNED, schema1.sign(data),
                                  modified)
        return StoredManifest(digest, media_type, data, modified)

    async def note_pulled(self, reference: str, stored: StoredManifest) -> None:
        """A client was given the manifest (by `reference`, a tag or its digest)."""
        if self.events.enabled:
            self.events.pulled(self.index, self._events("pull", reference, stored.digest,
                                                        stored.media_type, stored.data))

    def _events(self, action: str, reference: str, digest: Digest, media_type: str,
                data: bytes) -> list[str]:
        if not self.events.wants(action, media_type):
            return []
        references = references_in(data) if self.events.include_references else []
        return self.events.manifest(action, self.name, str(digest), media_type, len(data),
                                    reference if is_tag(reference) else None, references)

    async def content(self, digest: Digest) -> bytes:
        """The bytes of a manifest the index lists in this repository, from the cache or
        its blob, its links unread (for showing it, not for serving it)."""
        cached = self.cache.get(self.name, digest)
        if cached is not None:
            return cached[1]
        try:
            return await self.blobs.get(digest)
        except BlobUnknown:
            raise ManifestUnknown(detail={"reference": str(digest)}) from None

    async def _pushed_at(self, reference: str, digest: Digest) -> float | None:
        """Every push rewrites the tag's current link and the revision link, so their
        mtimes say when the tag, or the manifest, was last pushed (distribution's layout
        records no more; the index is not needed for it)."""
        link = (layout.tag_current_link(self.name, reference) if is_tag(reference)
                else layout.revision_link(self.name, digest))
        info = await self.driver.stat(link)
        return None if info is None else info.modified


    async def _media_type(self, digest: Digest, data: bytes) -> str:
        try:
            recorded = await self.driver.get_content(layout.revision_media_type(self.name, digest))
            return recorded.decode().strip()
        except (PathNotFound, UnicodeDecodeError):
            return stored_media_type(data)

    async def put(self, reference: str, data: bytes, content_type: str | None) -> PushedManifest:
        return await self._store(reference, data, content_type, check_references=True)

    async def store_pulled(self, reference: str, data: bytes, content_type: str | None
                           ) -> PushedManifest:
        """Keep a manifest pulled from another registry (`reference`: the tag or digest it
        was pulled by). Its blobs are not checked: a cache fetches them only when they
        are asked for."""
        return await self._store(reference, data, content_type, check_references=False)

    async def _store(self, reference: str, data: bytes, content_type: str | None,
                     check_references: bool) -> PushedManifest:
        if len(data) > self.max_size:
            raise TooLarge(f"manifest is larger than {self.max_size} bytes",
                           {"size": len(data), "limit": self.max_size})
        tag = reference if is_tag(reference) else None
        expected = None if tag else Digest.parse(reference)
        if len(data) <= INLINE_PARSE_LIMIT:
            digest, manifest = _digest_and_parse(data, expected, content_type)
        else:
            digest, manifest = await asyncio.to_thread(_digest_and_parse, data, expected,
                                                       content_type)
        record = ManifestRecord(
            str(digest), manifest.media_type, len(data),
            str(manifest.subject.digest) if manifest.subject else None,
            manifest.artifact_type, manifest.annotations,
            *references_of(manifest),
        )
        # Checking the blobs and recording that this manifest needs them happen in one
        # write transaction: garbage collection cannot delete a blob in between.
        async with self.index.writing() as db:
            if check_references:
                await self._check_references(manifest)
            await self.blobs.put(data, digest)
            await self.driver.put_content(layout.revision_media_type(self.name, digest),
                                          manifest.media_type.encode())
            await write_link(self.driver, layout.revision_link(self.name, digest), digest)
            if tag is not None:
                await self.tags.tag(tag, digest)
            await db.record_manifest(self.name, record, tag)
            if check_references:  # a push (a cache keeping what it pulled is none)
                await db.add_events(self._events("push", reference, digest,
                                                 manifest.media_type, data))
        self.cache.put(self.name, digest, manifest.media_type, data)
        return PushedManifest(digest, manifest)

    async def _check_references(self, manifest: Manifest) -> None:
        missing: list[str] = []
        checks = 0
        # Foreign (non-distributable) layers live elsewhere and are not pushed here.
        blobs = {blob.digest: blob for blob in manifest.blobs if not blob.has_urls}
        for digest in blobs:
            checks += 1
            if checks % CHECKS_PER_TURN == 0:
                await asyncio.sleep(0)  # the lookups below never wait: let others in
            if not await self.layers.is_linked(digest) or \
                    await self.blobs.size(digest) is None:
                missing.append(str(digest))
        children = {(child.digest, child.media_type): child for child in manifest.children}
        for digest, media_type in children:
            checks += 1
            if checks % CHECKS_PER_TURN == 0:
                await asyncio.sleep(0)
            if await self.exists(digest):
                continue
            if media_type not in mediatypes.ACCEPTED_ON_PUSH and \
                    await self.layers.is_linked(digest):
                continue
            missing.append(str(digest))
        if missing:
            raise ManifestBlobUnknown(detail={"digests": list(dict.fromkeys(missing))})

    async def delete(self, reference: str) -> None:
        """By tag: remove that tag only. By digest: the revision and every tag on it."""
        if is_tag(reference):
            await self.tags.untag(reference)
            return
        digest = Digest.parse(reference)
        if not await self.exists(digest):
            raise ManifestUnknown(detail={"reference": reference})
        # The index says which tags name it, without reading every tag of the repository
        # (thousands, in some); until it is built, the store does.
        tagged = (await self.index.tags_of(self.name, str(digest))
                  if await self.index.is_complete() else await self.tags.pointing_at(digest))
        for tag in tagged:
            with contextlib.suppress(ManifestUnknown):
                await self.tags.untag(tag, digest)
        try:
            await self.driver.delete(layout.revision_dir(self.name, digest))
        except PathNotFound:
            raise ManifestUnknown(detail={"reference": reference}) from None
        await self.index.remove_manifest(self.name, str(digest),
                                         self.events.deleted(self.name, str(digest)))


def _digest_and_parse(data: bytes, expected: Digest | None, content_type: str | None
                      ) -> tuple[Digest, Manifest]:
    """The digest of pushed bytes (checked against the one they were pushed by, if any)
    and the manifest they hold."""
    digest = Digest.of(data, expected.algorithm if expected else "sha256")
    if expected is not None and expected != digest:
        raise DigestInvalid("manifest digest does not match its content",
                            {"expected": str(expected), "actual": str(digest)})
    return digest, parse_manifest(data, content_type)
