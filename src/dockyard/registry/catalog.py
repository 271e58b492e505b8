"""The list of repositories in a store, found the way distribution finds them."""

from __future__ import annotations

import asyncio

from dockyard.registry import layout
from dockyard.storage import PathNotFound, StorageDriver

# Directories starting with "_" belong to a repository and are never descended into.
# Directories listed at once: on object storage a listing is a request, and a store's
# repositories are spread over many directories (team/app, team/other...).
PARALLEL = 16

async def list_repositories(driver: StorageDriver) -> list[str]:
    """Repositories with blobs or manifests: what the catalog lists, as in distribution
    (a repository whose push was interrupted before its manifest is listed too)."""
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", ("_layers", "_manifests"), found,
                asyncio.Semaphore(PARALLEL))
    return sorted(found)


async def list_repositories_with_uploads(driver: StorageDriver) -> list[str]:
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", ("_uploads",), found,
                asyncio.Semaphore(PARALLEL))
    return sorted(found)


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
