"""What a store holds on disk, and what keeps it: `dockyard du --config`.

Everything is read, nothing written: the index (a brought-up-to-date private copy, see
`stores.scratch_index`) says what each repository's tags reach, and the store says which
blobs exist, their sizes and the uploads in progress. The categories match what garbage
collection does with them:

- reachable from tags: manifests a tag names, an index's children, their configs and
  layers, and the referrers (signatures, SBOMs) of those; `garbage-collect -m` keeps these;
- untagged: the other manifests, and what only they reach; `garbage-collect -m` deletes them;
- unreferenced: blobs no manifest is or needs; `garbage-collect` deletes those older than
  its grace period;
- uploads: `_uploads/` of every repository; those idle longer than the purge age are
  abandoned, and garbage collection (or the server's upload purging) removes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockyard.index.base import Index
from dockyard.registry import catalog, layout
from dockyard.registry.gc import stored_blob_files
from dockyard.registry.maintenance import last_activity
from dockyard.storage import PathNotFound, StorageDriver

STAT_BATCH = 1024
Progress = Callable[[int, int], None]  # done, total


@dataclass
class RepositoryReach:
    """What one repository's tags keep: manifests and other blobs, digest to size."""

    name: str
    tags: int
    manifests: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # needed, but not in the store


@dataclass
class Amount:
    count: int = 0
    size: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.size += size


@dataclass
class StoreUsage:
    repositories: list[RepositoryReach]
    untagged_manifests: Amount  # the manifest documents themselves
    untagged_repositories: int  # how many repositories have some
    untagged_only: Amount  # every blob (manifests included) only untagged manifests reach
    unreferenced: Amount  # blobs nothing is or needs, older than the grace period
    unreferenced_fresh: Amount  # the same, younger: garbage collection keeps them for now
    uploads_active: Amount
    uploads_abandoned: Amount  # idle longer than the purge age
    stored: Amount  # every blob in the store
    grace_period: float
    purge_age: float | None


async def store_usage(driver: StorageDriver, index: Index, grace_period: float,
                      purge_age: float | None, progress: Progress | None = None
                      ) -> StoreUsage:
    """`index` must be in line with the store (`reindex.synchronize`)."""
    sizes, modified = await _blob_sizes(driver, progress)
    manifests = await index.manifest_entries()
    references = await index.all_references()
    keep = kept_manifests(await index.all_tagged(), manifests, references)

    counts = await index.tag_counts()
    reach: dict[str, RepositoryReach] = {name: RepositoryReach(name, count)
                                         for name, count in counts.items()}
    kept_digests: set[str] = set()
    for repository, digest in keep:
        into = reach.setdefault(repository, RepositoryReach(repository, 0))
        kept_digests.add(digest)
        _add(into.manifests, into.missing, digest, sizes.get(digest))
        for needed in references.get((repository, digest), []):
            kept_digests.add(needed)
            if (repository, needed) not in manifests:  # children are kept manifests
                _add(into.blobs, into.missing, needed, sizes.get(needed))

    untagged = [item for item in manifests if item not in keep]
    untagged_manifests = Amount()
    only_untagged: set[str] = set()
    for repository, digest in untagged:
        untagged_manifests.add(sizes.get(digest, manifests[(repository, digest)][0]))
        only_untagged.add(digest)
        only_untagged.update(references.get((repository, digest), []))
    only_untagged -= kept_digests
    untagged_only = Amount()
    for digest in only_untagged:
        if digest in sizes:
            untagged_only.add(sizes[digest])

    referenced = await index.referenced_digests()
    created = await index.all_blobs_created()
    cutoff = time.time() - grace_period
    unreferenced, fresh = Amount(), Amount()
    for digest, size in sizes.items():
        if digest in referenced:
            continue
        when = created.get(digest, modified[digest])
        (fresh if when > cutoff else unreferenced).add(size)

    active, abandoned = await _uploads(driver, purge_age)
    stored = Amount(len(sizes), sum(sizes.values()))
    return StoreUsage(
        sorted(reach.values(), key=lambda r: r.name), untagged_manifests,
        len({repository for repository, _ in untagged}), untagged_only, unreferenced, fresh,
        active, abandoned, stored, grace_period, purge_age)


def _add(into: dict[str, int], missing: list[str], digest: str, size: int | None) -> None:
    if size is None:
        if digest not in missing:
            missing.append(digest)
    else:
        into[digest] = size


def kept_manifests(tagged: list[tuple[str, str]],
                   manifests: dict[tuple[str, str], tuple[int, str | None]],
                   references: dict[tuple[str, str], list[str]]) -> set[tuple[str, str]]:
    """(repository, digest) of the manifests tags reach, as `garbage-collect -m` keeps them:
    what a tag names, an index's children, and the referrers of anything kept."""
    by_subject: dict[tuple[str, str], list[str]] = {}
    for (repository, digest), (_, subject) in manifests.items():
        if subject is not None:
            by_subject.setdefault((repository, subject), []).append(digest)
    keep = {item for item in tagged if item in manifests}
    pending = list(keep)
    while pending:
        repository, digest = pending.pop()
        needed = [(repository, child) for child in references.get((repository, digest), [])]
        needed += [(repository, referrer)
                   for referrer in by_subject.get((repository, digest), [])]
        for item in needed:
            if item in manifests and item not in keep:
                keep.add(item)
                pending.append(item)
    return keep


async def _blob_sizes(driver: StorageDriver, progress: Progress | None
                      ) -> tuple[dict[str, int], dict[str, float]]:
    """Size and mtime of every blob in the store."""
    listed = await stored_blob_files(driver)
    digests = list(listed)
    sizes: dict[str, int] = {}
    modified: dict[str, float] = {}
    for start in range(0, len(digests), STAT_BATCH):
        batch = digests[start:start + STAT_BATCH]
        unknown = [digest for digest in batch if listed[digest] is None]
        asked = dict(zip(unknown, await driver.stat_many(
            [layout.blob_data(digest) for digest in unknown]), strict=True))
        infos = [listed[digest] or asked.get(digest) for digest in batch]
        for digest, info in zip(batch, infos, strict=True):
            if info is not None and not info.is_dir:
                sizes[str(digest)] = info.size
                modified[str(digest)] = info.modified
        if progress is not None:
            progress(start + len(batch), len(digests))
    return sizes, modified


async def _uploads(driver: StorageDriver, purge_age: float | None) -> tuple[Amount, Amount]:
    """Uploads still going, and those idle longer than `purge_age` (count and bytes)."""
    active, abandoned = Amount(), Amount()
    now = datetime.now(UTC)
    for name in await catalog.list_repositories_with_uploads(driver):
        try:
            upload_ids = await driver.list(layout.uploads(name))
        except PathNotFound:
            continue
        for upload_id in sorted(upload_ids):
            last = await last_activity(driver, name, upload_id)
            if last is None:
                continue
            info = await driver.stat_writer(layout.upload_data(name, upload_id))
            size = info.size if info is not None else 0
            idle = (now - last).total_seconds()
            (abandoned if purge_age is not None and idle >= purge_age else active).add(size)
    return active, abandoned
