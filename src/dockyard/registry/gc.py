"""Garbage collection that runs while the registry serves.

Mark: what the metadata index says every manifest needs (config, layers, an index's
children), plus the manifests themselves. Sweep: every blob in the store that nothing marks,
each deleted inside its own write transaction on the index. Manifest pushes check their blobs
and record what they need inside such a transaction too, and uploads record a blob before
their 201, so a push either sees the blob gone (and fails cleanly) or has marked it first.
Blobs younger than the grace period are kept: an upload whose manifest has not come yet.

The index is brought in line with the store before marking: another registry (distribution
on the same store, before or while dockyard was stopped) or a hand-made change may have
added manifests dockyard never saw, and what the store references must never be deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dockyard.index.base import Index
from dockyard.registry import layout
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.gc_repositories import (
    StoreListing,
    names_in,
    remove_empty_repositories,
)
from dockyard.registry.maintenance import purge_uploads
from dockyard.registry.reference import HASH_HEX_LENGTHS, Digest
from dockyard.registry.reindex import synchronize
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

DEFAULT_GRACE_PERIOD = 3600.0
# Blobs deleted per write transaction: large enough that transactions cost little, small
# enough that a manifest push waits only milliseconds for the lock.
SWEEP_BATCH = 256


@dataclass(frozen=True)
class GCOptions:
    dry_run: bool = False
    delete_untagged: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    upload_purge_age: float | None = 168 * 3600.0


@dataclass
class GCReport:
    dry_run: bool
    manifests_deleted: list[str] = field(default_factory=list)
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    blobs_kept: int = 0
    blobs_kept_fresh: int = 0
    manifests_kept_fresh: int = 0
    uploads_purged: list[str] = field(default_factory=list)
    repositories_removed: list[str] = field(default_factory=list)
    repositories_reindexed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, int, int], None]  # phase, done, total


async def collect_garbage(driver: StorageDriver, index: Index, options: GCOptions,
                          progress: Progress | None = None) -> GCReport:
    started = time.monotonic()
    report = GCReport(options.dry_run)
    # Object storage: one listing of the repositories tree serves the index check, the
    # upload purge and the search for empty repositories, and the blob tree is listed
    # beside it (none of these lists a directory at a time).
    listed_at = time.time()
    tree, listed = await asyncio.gather(driver.files_below(layout.REPOSITORIES),
                                        stored_blob_files(driver))
    synced = await synchronize(driver, index, files=tree)
    report.repositories_reindexed = sorted({*synced.reindexed, *synced.removed})
    if options.delete_untagged:
        await _delete_untagged(driver, index, options, report)
    candidates = list(listed)
    cutoff = time.time() - options.grace_period
    # A first look outside any transaction sets aside what is in use now; only the rest
    # is checked again, and deleted, inside write transactions.
    in_use = await index.referenced_digests()
    unmarked = [digest for digest in candidates if str(digest) not in in_use]
    report.blobs_kept += len(candidates) - len(unmarked)
    deleted_links: set[str] = set()
    for start in range(0, len(unmarked), SWEEP_BATCH):
        deleted_links.update(await _sweep_blobs(
            driver, index, unmarked[start:start + SWEEP_BATCH], listed, cutoff,
            options.dry_run, report))
        if progress is not None:
            done = len(candidates) - len(unmarked) + min(start + SWEEP_BATCH, len(unmarked))
            progress("blobs", done, len(candidates))
    if options.upload_purge_age is not None:
        report.uploads_purged = await purge_uploads(driver, index.locks,
                                                    options.upload_purge_age,
                                                    options.dry_run, tree)
    listing = None
    if tree is not None:
        purged = tuple(f"{layout.uploads(name)}/{upload}/" for name, _, upload
                       in (item.rpartition("/") for item in report.uploads_purged))
        gone = deleted_links | {info.path for info in tree if info.path.startswith(purged)}
        listing = StoreListing(tree, listed_at, gone if not options.dry_run else ())
    report.repositories_removed = await remove_empty_repositories(
        driver, index, await index.repositories_without_manifests(), cutoff, options.dry_run,
        listing)
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _untagged(index: Index) -> list[tuple[str, str]]:
    """Manifests no tag reaches, keeping an index's children and the referrers (signatures,
    SBOMs) of anything kept."""
    manifests = await index.all_manifests()
    keep = set(await index.all_tagged())
    by_subject: dict[tuple[str, str], list[str]] = {}
    for repository, digest, subject in manifests:
        if subject is not None:
            by_subject.setdefault((repository, subject), []).append(digest)
    present = {(repository, digest) for repository, digest, _ in manifests}
    pending = list(keep)
    while pending:
        repository, digest = pending.pop()
        needed = [(repository, child) for child in await index.references_of(repository, digest)]
        needed += [(repository, referrer)
                   for referrer in by_subject.get((repository, digest), [])]
        for item in needed:
            if item in present and item not in keep:
                keep.add(item)
                pending.append(item)
    return sorted(present - keep)


async def _delete_untagged(driver: StorageDriver, index: Index, options: GCOptions,
                           report: GCReport) -> None:
    # Untagged is how every multi-platform push starts (children by digest, then the index
    # naming them), so a manifest pushed within the grace period is kept. Its revision link
    # is rewritten on every push, and pushes hold the same transaction as the check below.
    cutoff = time.time() - options.grace_period
    for repository, digest in await _untagged(index):
        async with index.writing() as db:
            # A tag or an index may have come for it since the list was made.
            if await db.is_needed(repository, digest):
                continue
            pushed = await driver.stat(layout.revision_link(repository, Digest.parse(digest)))
            if pushed is not None and pushed.modified > cutoff:
                report.manifests_kept_fresh += 1
                continue
            report.manifests_deleted.append(f"{repository}@{digest}")
            if options.dry_run:
                continue
            with contextlib.suppress(PathNotFound):
                await driver.delete(layout.revision_dir(repository, Digest.parse(digest)))
            await db.forget_manifest(repository, digest)


async def stored_blobs(driver: StorageDriver) -> list[Digest]:
    return list(await stored_blob_files(driver))


async def stored_blob_files(driver: StorageDriver) -> dict[Digest, FileInfo | None]:
    """Every blob in the store, with its data file's size and date where one listing of
    the whole blob tree gave them (object storage: 1,000 blobs a request, no request per
    blob), else None (ask `stat`)."""
    files = await driver.files_below(layout.BLOBS)
    if files is not None:
        listed: dict[Digest, FileInfo | None] = {}
        crowded: set[Digest] = set()  # something beside `data` in the blob's directory
        root = f"{layout.BLOBS}/"
        for info in files:
            parts = info.path[len(root):].split("/")
            if len(parts) < 4 or parts[0] not in HASH_HEX_LENGTHS:
                continue
            try:
                digest = Digest.parse(f"{parts[0]}:{parts[2]}")
            except DigestInvalid:
                continue
            if parts[3:] == ["data"] and digest not in crowded:
                listed[digest] = info
            else:
                crowded.add(digest)
                listed[digest] = None
        return dict(sorted(listed.items(), key=lambda item: str(item[0])))
    found: dict[Digest, FileInfo | None] = {}
    for algorithm in HASH_HEX_LENGTHS:
        for prefix in await names_in(driver, f"{layout.BLOBS}/{algorithm}"):
            for hex_digest in await names_in(driver, f"{layout.BLOBS}/{algorithm}/{prefix}"):
                try:
                    found[Digest.parse(f"{algorithm}:{hex_digest}")] = None
                except DigestInvalid:
                    continue
    return found


async def _sweep_blobs(driver: StorageDriver, index: Index, batch: list[Digest],
                       listed: dict[Digest, FileInfo | None], cutoff: float, dry_run: bool,
                       report: GCReport) -> list[str]:
    """Delete those of `batch` that nothing is or needs, in one write transaction; the
    layer links deleted with them."""
    # Sizes and dates first (from the listing, else asked), outside the transaction: an
    # upload of one of these digests records it (as fresh) in the index, which is read
    # again below, inside.
    unknown = [digest for digest in batch if listed.get(digest) is None]
    asked = dict(zip(unknown, await driver.stat_many(
        [layout.blob_data(digest) for digest in unknown]), strict=True))
    infos = [listed.get(digest) or asked.get(digest) for digest in batch]
    texts = [str(digest) for digest in batch]
    async with index.writing() as db:
        referenced = await db.referenced_among(texts)
        recorded = await db.blobs_created(texts)
        doomed: list[Digest] = []
        for digest, text, info in zip(batch, texts, infos, strict=True):
            if text in referenced:
                report.blobs_kept += 1
                continue
            size, created = recorded.get(text, (None, None))
            if created is None and info is not None:
                created = info.modified
            if created is not None and created > cutoff:
                report.blobs_kept_fresh += 1
                continue
            doomed.append(digest)
            report.blobs_deleted.append(text)
            report.bytes_freed += info.size if info is not None else (size or 0)
        if dry_run or not doomed:
            return []
        gone = [str(digest) for digest in doomed]
        # Links first: a crash part-way leaves links to a blob that still exists.
        links = [layout.layer_link(repository, Digest.parse(text))
                 for repository, text in await db.links_among(gone)]
        if any(info is not None for info in listed.values()):
            # The blob tree was listed (object storage): its keys are known, so they are
            # deleted as they are, with no listing of each blob's and link's directory.
            # (A link's directory holds the link alone; pushes take this transaction.)
            await driver.delete_files(links)
            await driver.delete_files([layout.blob_data(digest) for digest in doomed
                                       if listed.get(digest) is not None])
            await driver.delete_many([layout.blob_dir(digest) for digest in doomed
                                      if listed.get(digest) is None])
        else:
            await driver.delete_many([link.removesuffix("/link") for link in links])
            await driver.delete_many([layout.blob_dir(digest) for digest in doomed])
        await db.forget_blobs(gone)
    return links
