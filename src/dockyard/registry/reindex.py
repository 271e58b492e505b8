"""Bringing the metadata index in line with the store (which is the source of truth).

At start the server compares, repository by repository, the tags, manifest revisions and
layer links the store holds with what the index holds, and re-reads only the repositories
that differ: a store written by distribution, or changed while dockyard was stopped, is
picked up without a full rebuild. `rebuild` re-reads everything.

Repositories are scanned and read many at a time (`PARALLEL`), and within one the links and
manifests are read concurrently too: on object storage every read is a request whose
latency, not its size, is the cost, so a store of thousands of repositories read one request
after another takes minutes where concurrent reads take seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.concurrency import each
from dockyard.index.sqlite import (
    ManifestRecord,
    RepositoryContents,
    RepositorySnapshot,
    SQLiteIndex,
)
from dockyard.registry import catalog, layout
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.links import read_link
from dockyard.registry.manifest import parse_stored, stored_media_type
from dockyard.registry.reference import HASH_HEX_LENGTHS, Digest
from dockyard.storage import PathNotFound, StorageDriver

Progress = Callable[[str], None]
# Repositories re-read per write transaction while synchronizing: pushes wait for each.
WRITE_BATCH = 64
# Repositories scanned or read at once, and reads at once within one repository.
PARALLEL = 16


@dataclass(frozen=True, slots=True)
class SyncReport:
    repositories: int
    reindexed: list[str]
    removed: list[str]


async def _list(driver: StorageDriver, path: str) -> list[str]:
    try:
        return await driver.list(path)
    except PathNotFound:
        return []


async def _linked_digests(driver: StorageDriver, directory: str, link_of: Callable[[Digest], str]
                          ) -> set[str]:
    digests = []
    for algorithm in HASH_HEX_LENGTHS:
        for hex_digest in await _list(driver, f"{directory}/{algorithm}"):
            try:
                digests.append(Digest.parse(f"{algorithm}:{hex_digest}"))
            except DigestInvalid:
                continue

    async def linked(digest: Digest) -> bool:
        return await read_link(driver, link_of(digest)) == digest

    found = await each(PARALLEL, linked, digests)
    return {str(digest) for digest, ok in zip(digests, found, strict=True) if ok}


async def scan_repository(driver: StorageDriver, name: str) -> RepositorySnapshot:
    """What the store holds for a repository (links only; manifests are not parsed)."""
    names = await _list(driver, layout.tags(name))
    targets = await each(PARALLEL, lambda tag: read_link(
        driver, layout.tag_current_link(name, tag)), names)
    tags = {tag: str(digest) for tag, digest in zip(names, targets, strict=True)
            if digest is not None}
    manifests, layers = await asyncio.gather(
        _linked_digests(driver, f"{layout.manifests(name)}/revisions",
                        lambda d: layout.revision_link(name, d)),
        _linked_digests(driver, f"{layout.repository(name)}/_layers",
                        lambda d: layout.layer_link(name, d)))
    return RepositorySnapshot(tags, frozenset(manifests), frozenset(layers))


async def describe_manifest(driver: StorageDriver, name: str, digest_text: str
                            ) -> ManifestRecord | None:
    digest = Digest.parse(digest_text)
    try:
        data = await driver.get_content(layout.blob_data(digest))
    except PathNotFound:
        return None
    try:
        recorded = await driver.get_content(layout.revision_media_type(name, digest))
        media_type = recorded.decode().strip()
    except (PathNotFound, UnicodeDecodeError):
        media_type = stored_media_type(data)
    manifest = parse_stored(data, media_type)
    if manifest is None:
        return ManifestRecord(digest_text, media_type, len(data))
    subject = str(manifest.subject.digest) if manifest.subject else None
    references = tuple(str(item.digest) for item in (*manifest.blobs, *manifest.children))
    return ManifestRecord(digest_text, media_type, len(data), subject, manifest.artifact_type,
                          manifest.annotations, references)


async def read_repository(driver: StorageDriver, name: str, snapshot: RepositorySnapshot
                          ) -> RepositoryContents:
    described = await each(PARALLEL, lambda digest: describe_manifest(driver, name, digest),
                           sorted(snapshot.manifests))
    records = [record for record in described if record is not None]
    present = {record.digest for record in records}
    tags = {tag: digest for tag, digest in snapshot.tags.items() if digest in present}
    return RepositoryContents(name, tags, records, sorted(snapshot.layers))


async def synchronize(driver: StorageDriver, index: SQLiteIndex, full: bool = False,
                      progress: Progress | None = None,
                      on_total: Callable[[int], None] | None = None) -> SyncReport:
    """Make the index match the store; `full` re-reads every repository.

    Safe while the registry serves: a repository found to differ is scanned and read
    again inside an index write transaction, which every push and delete also takes, so
    what is written is the store as of that moment and never drops a manifest pushed
    since the first look. (Garbage collection relies on that: it marks from the index.)
    """
    names = await catalog.list_repositories(driver)
    if on_total is not None:
        on_total(len(names))
    full = full or not index.is_complete
    indexed = {} if full else index.snapshots()

    async def differs(name: str) -> bool:
        same = not full and indexed.get(name) == await scan_repository(driver, name)
        if same and progress is not None:
            progress(name)
        return not same

    found = await each(PARALLEL, differs, names)
    differing = [name for name, differ in zip(names, found, strict=True) if differ]
    stored = set(names)
    gone = [name for name in index.repositories() if name not in stored]
    removed: list[str] = []

    async def read_again(name: str) -> RepositoryContents:
        contents = await read_repository(driver, name, await scan_repository(driver, name))
        if progress is not None:
            progress(name)
        return contents

    for start in range(0, len(differing), WRITE_BATCH):
        async with index.writing() as db:
            for contents in await each(PARALLEL, read_again,
                                       differing[start:start + WRITE_BATCH]):
                SQLiteIndex.replace_repository_within(db, contents)
    for start in range(0, len(gone), WRITE_BATCH):
        async with index.writing() as db:
            for name in gone[start:start + WRITE_BATCH]:
                # Pushed to since the store was listed: keep it, and what it now holds.
                snapshot = await scan_repository(driver, name)
                if not _is_empty(snapshot):
                    SQLiteIndex.replace_repository_within(
                        db, await read_repository(driver, name, snapshot))
                else:
                    SQLiteIndex.delete_repository_within(db, name)
                    removed.append(name)
    await index.mark_complete()
    return SyncReport(len(names), differing, removed)


async def reindex_repository(driver: StorageDriver, index: SQLiteIndex, name: str) -> bool:
    """Read one repository the index does not know from the store, if the store has it
    (another registry pushed it); True if it is now indexed."""
    if _is_empty(await scan_repository(driver, name)):
        return False
    async with index.writing() as db:
        snapshot = await scan_repository(driver, name)
        if _is_empty(snapshot):
            return False
        SQLiteIndex.replace_repository_within(db, await read_repository(driver, name, snapshot))
    return True


def _is_empty(snapshot: RepositorySnapshot) -> bool:
    return not (snapshot.manifests or snapshot.layers or snapshot.tags)
