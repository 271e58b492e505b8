"""Tags: names pointing at a manifest revision, kept as distribution keeps them."""

from __future__ import annotations

from dockyard.index.base import Index
from dockyard.registry import layout
from dockyard.registry.errors import ManifestUnknown
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.links import read_link, write_link
from dockyard.registry.reference import Digest
from dockyard.storage import PathNotFound, StorageDriver


class RepositoryTags:
    def __init__(self, name: str, driver: StorageDriver, index: Index,
                 events: EventLog = NO_EVENTS) -> None:
        self.name = name
        self.driver = driver
        self.index = index
        self.events = events

    async def resolve(self, tag: str) -> Digest:
        digest = await read_link(self.driver, layout.tag_current_link(self.name, tag))
        if digest is None:
            raise ManifestUnknown(detail={"tag": tag})
        return digest

    async def tag(self, tag: str, digest: Digest) -> None:
        # The index entry records every digest the tag ever had (distribution's history).
        await write_link(self.driver, layout.tag_index_link(self.name, tag, digest), digest)
        await write_link(self.driver, layout.tag_current_link(self.name, tag), digest)

    async def untag(self, tag: str, digest: Digest | None = None) -> None:
        """Remove a tag (only if it names `digest`, when given: it may have moved)."""
        current = await read_link(self.driver, layout.tag_current_link(self.name, tag))
        if current is None or (digest is not None and current != digest):
            raise ManifestUnknown(detail={"tag": tag})
        # The index first: with its database down the delete fails before the store
        # changes, rather than answering 503 for a tag that is gone.
        await self.index.remove_tag(self.name, tag, self.events.deleted(self.name, tag=tag))
        try:
            await self.driver.delete(layout.tag_dir(self.name, tag))
        except PathNotFound:
            raise ManifestUnknown(detail={"tag": tag}) from None

    async def page(self, last: str | None, limit: int | None) -> list[str]:
        """Tag names in order, from the index."""
        return await self.index.tags(self.name, last, limit)

    async def all(self) -> list[str]:
        """Every tag with a current link, sorted."""
        try:
            names = await self.driver.list(layout.tags(self.name))
        except PathNotFound:
            return []
        present = []
        for name in names:
            info = await self.driver.stat(layout.tag_current_link(self.name, name))
            if info is not None:
                present.append(name)
        return sorted(present)

    async def pointing_at(self, digest: Digest) -> list[str]:
        found = []
        for name in await self.all():
            if await read_link(self.driver, layout.tag_current_link(self.name, name)) == digest:
                found.append(name)
        return found
