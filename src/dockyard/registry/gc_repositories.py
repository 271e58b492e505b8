"""The last step of garbage collection: removing repositories left with no manifests.

A repository goes when it has no manifests, no upload in progress and no recent layer link
(a push that has uploaded layers but not yet its manifest looks like that, briefly). Its
`_layers` and `_manifests` files go with it; a nested repository (name/child) keeps its
parents.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dockyard.concurrency import each
from dockyard.index.base import Index
from dockyard.registry import catalog, layout
from dockyard.registry.reference import HASH_HEX_LENGTHS
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

# Repositories decided on per write transaction (pushes wait for each).
BATCH = 256
# Repositories looked at once when each needs listings of its own.
PARALLEL = 16


@dataclass(frozen=True, slots=True)
class StoreListing:
    """A listing of the whole repositories tree, made at `made_at` (time.time()), and the
    files deleted since by the collector itself."""

    files: Sequence[FileInfo]
    made_at: float
    deleted: Collection[str] = ()


async def remove_empty_repositories(driver: StorageDriver, index: Index, names: list[str],
                                    cutoff: float, dry_run: bool,
                                    listing: StoreListing | None = None) -> list[str]:
    """Remove those of `names` (repositories the index holds no manifests of) that are empty;
    the ones removed (or, in a dry run, that would be). With `listing`, nothing more is
    listed: what a push wrote since it was made is in the index."""
    removed: list[str] = []
    if listing is not None:
        files_of = catalog.group_by_repository(
            listing.files, (*catalog.REPOSITORY_MARKERS, "_uploads"))
        for start in range(0, len(names), BATCH):
            removed += await _remove_listed(driver, index, names[start:start + BATCH],
                                            files_of, listing, cutoff, dry_run)
        return removed
    for start in range(0, len(names), BATCH):
        removed += await _remove_looked_at(driver, index, names[start:start + BATCH], cutoff,
                                           dry_run)
    return removed


async def _remove_listed(driver: StorageDriver, index: Index, names: list[str],
                         files_of: dict[str, list[FileInfo]], listing: StoreListing,
                         cutoff: float, dry_run: bool) -> list[str]:
    doomed: dict[str, list[str]] = {}
    for name in names:
        files = [info for info in files_of.get(name, ()) if info.path not in listing.deleted]
        paths = _files_if_empty(name, files, cutoff)
        if paths is not None:
            doomed[name] = paths
    if not doomed:
        return []
    async with index.writing() as db:
        # What pushes did since the listing: a manifest, or a layer link (new, or written
        # again over one the listing saw).
        candidates = list(doomed)
        busy = await db.with_manifests_among(candidates) | await db.linked_since(
            candidates, listing.made_at)
        removed = [name for name in candidates if name not in busy]
        if dry_run or not removed:
            return removed
        await driver.delete_files([path for name in removed for path in doomed[name]])
        await driver.prune_many([layout.uploads(name) for name in removed],
                                layout.REPOSITORIES)
        await db.forget_repositories(removed)
    return removed


def _files_if_empty(name: str, files: Sequence[FileInfo], cutoff: float) -> list[str] | None:
    """The `_layers` and `_manifests` files of a repository, from a listing of its files,
    if it is empty; else None."""
    root = f"{layout.repository(name)}/"
    doomed: list[str] = []
    for info in files:
        parts = info.path[len(root):].split("/")
        if parts[:2] == ["_manifests", "revisions"] or parts[0] == "_uploads":
            return None  # manifests the index does not know yet; an upload going on
        if parts[0] == "_layers" and parts[-1] == "link" and info.modified > cutoff:
            return None
        if parts[0] in ("_layers", "_manifests"):
            doomed.append(info.path)  # not a nested repository's (name/child) files
    return doomed


async def _remove_looked_at(driver: StorageDriver, index: Index, names: list[str],
                            cutoff: float, dry_run: bool) -> list[str]:
    """Each repository looked at, a listing per directory, inside the write transaction
    (drivers that list no whole tree at once: the filesystem)."""
    async with index.writing() as db:
        pushed_since = await db.with_manifests_among(names)
        candidates = [name for name in names if name not in pushed_since]
        found = await each(PARALLEL, lambda name: _is_empty(driver, name, cutoff),
                           candidates)
        removed = [name for name, is_empty in zip(candidates, found, strict=True) if is_empty]
        if dry_run or not removed:
            return removed
        await driver.delete_many([f"{layout.repository(name)}/{part}" for name in removed
                                  for part in ("_layers", "_manifests")])
        # Directories left empty go, up to the repositories root: `_uploads` only if no
        # upload has started since the check above (uploads take no index transaction), and
        # a nested repository (name/child) keeps its parents.
        await driver.prune_many([layout.uploads(name) for name in removed],
                                layout.REPOSITORIES)
        await db.forget_repositories(removed)
    return removed


async def names_in(driver: StorageDriver, path: str) -> list[str]:
    """What a directory holds, sorted; nothing if it is missing."""
    try:
        return sorted(await driver.list(path))
    except PathNotFound:
        return []


async def _is_empty(driver: StorageDriver, name: str, cutoff: float) -> bool:
    for algorithm in HASH_HEX_LENGTHS:
        if await names_in(driver, layout.revisions(name, algorithm)):
            return False  # the store has manifests the index does not know yet
    if await names_in(driver, layout.uploads(name)):
        return False
    layers = f"{layout.repository(name)}/_layers"
    links = [f"{layers}/{algorithm}/{hex_digest}/link" for algorithm in HASH_HEX_LENGTHS
             for hex_digest in await names_in(driver, f"{layers}/{algorithm}")]
    return not any(info is not None and info.modified > cutoff
                   for info in await driver.stat_many(links))
