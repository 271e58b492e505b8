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
    return sorted(await _walk(driver, REPOSITORY_MARKERS))


async def list_repositories_with_uploads(driver: StorageDriver) -> list[str]:
    files = await driver.files_below(layout.REPOSITORIES)
    if files is not None:  # one listing of the whole tree is cheaper than the walk
        return sorted(group_by_repository(files, ("_uploads",)))
    return sorted(await _walk(driver, ("_uploads",)))


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


async def _walk(driver: StorageDriver, markers: tuple[str, ...]) -> list[str]:
    """The repositories below the repositories root holding one of `markers`: PARALLEL
    listers take directories from one queue, each one per turn of the event loop (a local
    disk answers at once: a walk of the whole store must not keep requests out). A child
    is listed without asking first whether it is a directory: a file lists as missing, and
    on object storage the question would cost as much as the listing."""
    found: list[str] = []
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    queue.put_nowait((layout.REPOSITORIES, ""))

    async def lister() -> None:
        while True:
            path, name = await queue.get()
            try:
                await asyncio.sleep(0)
                children = await driver.list(path)
            except PathNotFound:
                continue
            else:
                if name and any(marker in children for marker in markers):
                    found.append(name)
                for child in children:
                    if not child.startswith("_"):
                        queue.put_nowait((f"{path}/{child}",
                                          f"{name}/{child}" if name else child))
            finally:
                queue.task_done()

    listers = [asyncio.create_task(lister()) for _ in range(PARALLEL)]
    try:
        await queue.join()
    finally:
        for task in listers:
            task.cancel()
        await asyncio.gather(*listers, return_exceptions=True)
    return found
