"""The list of repositories in a store, found the way distribution finds them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dockyard.registry import layout
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

REPOSITORY_MARKERS = ("_layers", "_manifests")

# Directories starting with "_" belong to a repository and are never descended into.
# Directories listed at once: on object storage a listing is a request, and a store's
# repositories are spread over many directories (team/app, team/other...).
PARALLEL = 16

async def list_repositories(driver: StorageDriver) -> list[str]:
    """Repositories with blobs or manifests: what the catalog lists, as in distribution
    (a repository whose push was interrupted before its manifest is listed too)."""
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", REPOSITORY_MARKERS, found,
                asyncio.Semaphore(PARALLEL))
    return sorted(found)


async def list_repositories_with_uploads(driver: StorageDriver) -> list[str]:
    files = await driver.files_below(layout.REPOSITORIES)
    if files is not None:  # one listing of the whole tree is cheaper than the walk
        return sorted(group_by_repository(files, ("_uploads",)))
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", ("_uploads",), found,
                asyncio.Semaphore(PARALLEL))
    return sorted(found)


def group_by_repository(files: Sequence[FileInfo], markers: tuple[str, ...]
                        ) -> dict[str, list[FileInfo]]:
    """The files of a listing of the repositories tree, by the repository they belong to:
    the directories holding one of `markers`, found as the walk finds them (never below a
    directory whose name starts with "_")."""
    root = f"{layout.REPOSITORIES}/"
    found: dict[str, list[FileInfo]] = {}
    for info in files:
        parts = info.path[len(root):].split("/")
        for depth, part in enumerate(parts[:-1]):
            if part.startswith("_"):
                if depth and part in markers:
                    found.setdefault("/".join(parts[:depth]), []).append(info)
                break
    return found


async def _walk(driver: StorageDriver, path: str, name: str, markers: tuple[str, ...],
                found: list[str], slots: asyncio.Semaphore) -> None:
    # A slot is held for a directory's own listing only, never while its children are
    # walked: the tree may be deeper than there are slots. A child is listed without asking
    # first whether it is a directory: a file lists as missing, and on object storage the
    # question would cost as much as the listing.
    async with slots:
        try:
            children = await driver.list(path)
        except PathNotFound:
            return
    if name and any(marker in children for marker in markers):
        found.append(name)
    await asyncio.gather(*(
        _walk(driver, f"{path}/{child}", f"{name}/{child}" if name else child, markers,
              found, slots)
        for child in children if not child.startswith("_")))
