"""Garbage collection that runs while the registry serves.

Mark: what the metadata index says every manifest needs (config, layers, an index's
children), plus the manifests themselves. Sweep: every blob in the store that nothing marks,
each deleted inside its own write transaction on the index. Manifest pushes check their blobs
and record what they need inside such a transaction too, and uploads record a blob before
their 201, so a push either sees the blob gone (and fails cleanly) or has marked it first.
Blobs younger than the grace period are kept: an upload whose manifest has not come yet.

A full pass brings the index in line with the store before marking: another registry
(distribution on the same store, before or while dockyard was stopped) or a hand-made change
may have added manifests dockyard never saw, and what the store references must never be
deleted. Where dockyard is the store's only writer (storage.index.solewriter), the index
knows every change, and a collection looks only at what changed (gc_incremental).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from dockyard.index.base import Index
from dockyard.registry import layout
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.gc_incremental import collect_candidates
from dockyard.registry.gc_model import (
    DEFAULT_GRACE_PERIOD,
    NEEDS_FULL_PASS_KEY,
    SWEEP_BATCH,
    GCOptions,
    GCReport,
    Progress,
)
from dockyard.registry.gc_repositories import (
    StoreListing,
    names_in,
    remove_empty_repositories,
)
from dockyard.registry.gc_sweep import sweep_blobs
from dockyard.registry.maintenance import purge_uploads
from dockyard.registry.reference import HASH_HEX_LENGTHS, Digest
from dockyard.registry.reindex import synchronize
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

__all__ = ["DEFAULT_GRACE_PERIOD", "GCOptions", "GCReport", "Progress", "collect_garbage"]

# When the last full pass finished (time.time()), in the index's meta table.
FULL_PASS_KEY = "gc_full_pass_at"


async def collect_garbage(driver: StorageDriver, index: Index, options: GCOptions,
                          progress: Progress | None = None) -> GCReport:
    started = time.monotonic()
    report = GCReport(options.dry_run)
    if options.sole_writer:
        report.full_pass_reason = await _why_full_pass(index, options)
    if options.sole_writer and report.full_pass_reason is None:
        if options.delete_untagged:
            await _delete_untagged(driver, index, options, report)
        await collect_candidates(driver, index, options, report, progress)
    else:
        await _collect_everything(driver, index, options, report, progress)
        if not options.dry_run:
            async with index.writing() as db:
                await db.set_meta(FULL_PASS_KEY, str(time.time()))
                await db.delete_meta(NEEDS_FULL_PASS_KEY)
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _why_full_pass(index: Index, options: GCOptions) -> str | None:
    """Why this collection must look at the whole store although dockyard alone writes it;
    None if what changed will do."""
    if options.full:
        return "asked for"
    if not await index.is_complete():
        return "the index is still being built"
    if await index.get_meta(NEEDS_FULL_PASS_KEY) is not None:
        return ("the first collection since the index was built from the store or "
                "upgraded: it may hold blobs no index recorded")
    return None


async def last_full_pass(index: Index) -> float | None:
    value = await index.get_meta(FULL_PASS_KEY)
    return float(value) if value else None


async def _collect_everything(driver: StorageDriver, index: Index, options: GCOptions,
                              report: GCReport, progress: Progress | None) -> None:
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
        deleted_links.update(await sweep_blobs(
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


