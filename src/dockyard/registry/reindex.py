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
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dockyard.concurrency import each
from dockyard.index.base import (
    Index,
    ManifestRecord,
    RepositoryContents,
    RepositorySnapshot,
)
from dockyard.registry import catalog, layout
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.gc_model import NEEDS_FULL_PASS_KEY
from dockyard.registry.links import read_link
from dockyard.registry.manifest import parse_stored, references_of, stored_media_type
from dockyard.registry.reference import HASH_HEX_LENGTHS, Digest
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

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


@dataclass(frozen=True, slots=True)
class _Scan:
    snapshot: RepositorySnapshot
    # Revisions with a `mediatype` file beside their link; None: not known, look for each.
    media_types: frozenset[str] | None = None


async def scan_repository(driver: StorageDriver, name: str,
                          expected: RepositorySnapshot | None = None) -> RepositorySnapshot:
    """What the store holds for a repository (links only; manifests are not parsed).
    `expected`, what the index holds, only saves reads where its tags are still right."""
    return (await _scan(driver, name, expected)).snapshot


async def _scan(driver: StorageDriver, name: str, expected: RepositorySnapshot | None = None
                ) -> _Scan:
    files = await driver.files_below(layout.repository(name))
    if files is not None:
        return await _scan_listing(driver, name, files, expected)
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
    return _Scan(RepositorySnapshot(tags, frozenset(manifests), frozenset(layers)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _digest(algorithm: str, hex_digest: str) -> Digest | None:
    if algorithm not in HASH_HEX_LENGTHS:
        return None
    try:
        return Digest.parse(f"{algorithm}:{hex_digest}")
    except DigestInvalid:
        return None


async def _scan_listing(driver: StorageDriver, name: str, files: Sequence[FileInfo],
                        expected: RepositorySnapshot | None) -> _Scan:
    """The scan from one listing of the repository's files. A link whose listed content MD5
    is that of the digest it should hold needs no read: on S3 a repository costs one
    listing, not a request per tag, revision and layer."""
    root = f"{layout.repository(name)}/"
    current: dict[str, FileInfo] = {}
    revisions: dict[Digest, FileInfo] = {}
    layers: dict[Digest, FileInfo] = {}
    media_types: set[str] = set()
    seen: set[str] = set()  # digests a tag has pointed at (distribution's tag index)
    for info in files:
        match info.path[len(root):].split("/"):
            case ["_manifests", "tags", tag, "current", "link"]:
                current[tag] = info
            case ["_manifests", "tags", _, "index", algorithm, hex_digest, "link"]:
                seen.add(f"{algorithm}:{hex_digest}")
            case ["_manifests", "revisions", algorithm, hex_digest, "link"]:
                if (digest := _digest(algorithm, hex_digest)) is not None:
                    revisions[digest] = info
            case ["_manifests", "revisions", algorithm, hex_digest, "mediatype"]:
                media_types.add(f"{algorithm}:{hex_digest}")
            case ["_layers", algorithm, hex_digest, "link"]:
                if (digest := _digest(algorithm, hex_digest)) is not None:
                    layers[digest] = info

    async def holds(item: tuple[Digest, FileInfo]) -> bool:
        digest, info = item
        if info.content_md5 is not None and info.content_md5 == _md5(str(digest)):
            return True
        return await read_link(driver, info.path) == digest

    candidates: set[str] = {*(str(digest) for digest in revisions), *seen,
                            *(expected.tags.values() if expected is not None else ())}
    by_md5 = {_md5(text): text for text in candidates}

    async def target(info: FileInfo) -> str | None:
        if info.content_md5 is not None and info.content_md5 in by_md5:
            return by_md5[info.content_md5]
        digest = await read_link(driver, info.path)
        return None if digest is None else str(digest)

    tag_names = sorted(current)
    revision_items, layer_items = list(revisions.items()), list(layers.items())
    targets, linked_revisions, linked_layers = await asyncio.gather(
        each(PARALLEL, target, [current[tag] for tag in tag_names]),
        each(PARALLEL, holds, revision_items), each(PARALLEL, holds, layer_items))
    tags = {tag: digest for tag, digest in zip(tag_names, targets, strict=True)
            if digest is not None}
    manifests = frozenset(str(digest) for (digest, _), ok
                          in zip(revision_items, linked_revisions, strict=True) if ok)
    linked = frozenset(str(digest) for (digest, _), ok
                       in zip(layer_items, linked_layers, strict=True) if ok)
    return _Scan(RepositorySnapshot(tags, manifests, linked), frozenset(media_types))


async def describe_manifest(driver: StorageDriver, name: str, digest_text: str,
                            has_media_type: bool = True) -> ManifestRecord | None:
    """The index's record of a manifest revision; `has_media_type` False when the store is
    known to hold no `mediatype` file beside it (saves looking)."""
    digest = Digest.parse(digest_text)
    try:
        data = await driver.get_content(layout.blob_data(digest))
    except PathNotFound:
        return None
    media_type = None
    if has_media_type:
        try:
            recorded = await driver.get_content(layout.revision_media_type(name, digest))
            media_type = recorded.decode().strip()
        except (PathNotFound, UnicodeDecodeError):
            pass
    if media_type is None:
        media_type = stored_media_type(data)
    manifest = parse_stored(data, media_type)
    if manifest is None:
        return ManifestRecord(digest_text, media_type, len(data))
    subject = str(manifest.subject.digest) if manifest.subject else None
    return ManifestRecord(digest_text, media_type, len(data), subject, manifest.artifact_type,
                          manifest.annotations, *references_of(manifest))


async def read_repository(driver: StorageDriver, name: str, snapshot: RepositorySnapshot,
                          media_types: frozenset[str] | None = None) -> RepositoryContents:
    """Every manifest of `snapshot` described; `media_types`, where known, the revisions
    with a `mediatype` file."""
    described = await each(PARALLEL, lambda digest: describe_manifest(
        driver, name, digest, media_types is None or digest in media_types),
        sorted(snapshot.manifests))
    records = [record for record in described if record is not None]
    present = {record.digest for record in records}
    tags = {tag: digest for tag, digest in snapshot.tags.items() if digest in present}
    return RepositoryContents(name, tags, records, sorted(snapshot.layers))


async def synchronize(driver: StorageDriver, index: Index, full: bool = False,
                      progress: Progress | None = None,
                      on_total: Callable[[int], None] | None = None,
                      files: Sequence[FileInfo] | None = None, check_only: bool = False
                      ) -> SyncReport:
    """Make the index match the store; `full` re-reads every repository. `files`, a
    listing of the whole repositories tree the caller has just made, saves making another.
    `check_only`: change nothing, only say which repositories differ (and which the index
    has but the store does not, as removed).

    Safe while the registry serves: a repository found to differ is scanned and read
    again inside an index write transaction, which every push and delete also takes, so
    what is written is the store as of that moment and never drops a manifest pushed
    since the first look. (Garbage collection relies on that: it marks from the index.)
    """
    listing = (catalog.group_by_repository(files, catalog.REPOSITORY_MARKERS)
               if files is not None else await _repository_files(driver))
    names = sorted(listing) if listing is not None else await catalog.list_repositories(driver)
    if on_total is not None:
        on_total(len(names))
    full = full or not await index.is_complete()
    indexed = {} if full else await index.snapshots()

    async def scan(name: str, known: RepositorySnapshot | None) -> RepositorySnapshot:
        if listing is not None:
            return (await _scan_listing(driver, name, listing[name], known)).snapshot
        return await scan_repository(driver, name, known)

    async def differs(name: str) -> bool:
        known = indexed.get(name)
        same = not full and known == await scan(name, known)
        if same and progress is not None:
            progress(name)
        return not same

    found = await each(PARALLEL, differs, names)
    differing = [name for name, differ in zip(names, found, strict=True) if differ]
    stored = set(names)
    gone = [name for name in await index.repositories() if name not in stored]
    if check_only:
        return SyncReport(len(names), differing, gone)
    removed: list[str] = []

    async def read_again(name: str) -> RepositoryContents:
        scan = await _scan(driver, name, indexed.get(name))
        contents = await read_repository(driver, name, scan.snapshot, scan.media_types)
        if progress is not None:
            progress(name)
        return contents

    ours: set[str] = set()
    for start in range(0, len(differing), WRITE_BATCH):
        async with index.writing() as db:
            for contents in await each(PARALLEL, read_again,
                                       differing[start:start + WRITE_BATCH]):
                if not full and await db.snapshot(contents.name) == contents.snapshot():
                    # A push or delete through this index since the first look: the index
                    # already holds what the store does.
                    ours.add(contents.name)
                    continue
                await db.replace_repository(contents)
    differing = [name for name in differing if name not in ours]
    for start in range(0, len(gone), WRITE_BATCH):
        async with index.writing() as db:
            for name in gone[start:start + WRITE_BATCH]:
                # Pushed to since the store was listed: keep it, and what it now holds.
                snapshot = await scan_repository(driver, name)
                if not _is_empty(snapshot):
                    await db.replace_repository(await read_repository(driver, name, snapshot))
                else:
                    await db.delete_repository(name)
                    removed.append(name)
    if full:
        # Built from the store: blobs nothing ever recorded may lie there, which only a
        # collection that lists the store finds. A new, empty store has none.
        if names or await _holds_blobs(driver):
            await index.set_meta(NEEDS_FULL_PASS_KEY, "yes")
        else:
            async with index.writing() as db:
                await db.delete_meta(NEEDS_FULL_PASS_KEY)
    await index.mark_complete()
    return SyncReport(len(names), differing, removed)


async def _holds_blobs(driver: StorageDriver) -> bool:
    for algorithm in HASH_HEX_LENGTHS:
        try:
            if await driver.list(f"{layout.BLOBS}/{algorithm}"):
                return True
        except PathNotFound:
            continue
    return False


async def _repository_files(driver: StorageDriver) -> dict[str, list[FileInfo]] | None:
    """Every repository's files from one listing of the whole repositories tree (None where
    the driver has no such listing): on S3 a few requests per thousand files instead of
    a listing per directory and per repository."""
    files = await driver.files_below(layout.REPOSITORIES)
    if files is None:
        return None
    return catalog.group_by_repository(files, catalog.REPOSITORY_MARKERS)


async def reindex_repository(driver: StorageDriver, index: Index, name: str) -> bool:
    """Read one repository the index does not know from the store, if the store has it
    (another registry pushed it); True if it is now indexed."""
    if _is_empty(await scan_repository(driver, name)):
        return False
    async with index.writing() as db:
        snapshot = await scan_repository(driver, name)
        if _is_empty(snapshot):
            return False
        await db.replace_repository(await read_repository(driver, name, snapshot))
    return True


def _is_empty(snapshot: RepositorySnapshot) -> bool:
    return not (snapshot.manifests or snapshot.layers or snapshot.tags)
