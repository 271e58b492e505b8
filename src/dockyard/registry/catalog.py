"""The list of repositories in a store, found the way distribution finds them."""

from __future__ import annotations

from dockyard.registry import layout
from dockyard.storage import PathNotFound, StorageDriver

# Directories starting with "_" belong to a repository and are never descended into.

async def list_repositories(driver: StorageDriver) -> list[str]:
    """Repositories with blobs or manifests: what the catalog lists, as in distribution
    (a repository whose push was interrupted before its manifest is listed too)."""
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", ("_layers", "_manifests"), found)
    return sorted(found)


async def list_repositories_with_uploads(driver: StorageDriver) -> list[str]:
    found: list[str] = []
    await _walk(driver, layout.REPOSITORIES, "", ("_uploads",), found)
    return sorted(found)


async def _walk(driver: StorageDriver, path: str, name: str, markers: tuple[str, ...],
                found: list[str]) -> None:
    try:
        children = await driver.list(path)
    except PathNotFound:
        return
    if name and any(marker in children for marker in markers):
        found.append(name)
    subdirectories = [child for child in children if not child.startswith("_")]
    infos = await driver.stat_many([f"{path}/{child}" for child in subdirectories])
    for child, info in zip(subdirectories, infos, strict=True):
        if info is not None and info.is_dir:
            await _walk(driver, f"{path}/{child}", f"{name}/{child}" if name else child,
                        markers, found)
