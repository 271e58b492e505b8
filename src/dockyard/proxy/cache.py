"""The pull-through cache's state in one process: the upstreams, the blob fetches under
way, and when each tag was last checked with its upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dockyard.config.model import ProxyConfig
from dockyard.proxy.fetches import Fetches
from dockyard.proxy.routes import Routes
from dockyard.registry.blobs import BlobStore
from dockyard.registry.reference import Digest

TagKey = tuple[str, str]  # (repository, tag)
# Tags remembered as checked, at most (each entry is small; an old one is only a question
# asked again).
MAX_CHECKED_TAGS = 100_000


class PullThroughCache:
    def __init__(self, config: ProxyConfig, spool_directory: Path, blobs: BlobStore) -> None:
        self.routes = Routes(config)
        self.fetches = Fetches(spool_directory, blobs)
        self.tag_freshness = config.tag_freshness
        # How long a request waits for another worker's fetch of the same manifest before
        # fetching it itself.
        self.fetch_wait = config.timeout + 5.0
        self._checked: dict[TagKey, tuple[Digest, float]] = {}
        self._checking: dict[TagKey, asyncio.Future[Digest]] = {}

    def fresh_tag(self, name: str, tag: str) -> Digest | None:
        """The digest a tag had when checked with the upstream within `tag_freshness`."""
        checked = self._checked.get((name, tag))
        if checked is None or time.monotonic() - checked[1] >= self.tag_freshness:
            return None
        return checked[0]

    async def check_tag(self, name: str, tag: str,
                        ask: Callable[[], Awaitable[Digest]]) -> Digest:
        """The tag's digest from `ask` (the upstream), asked once for all the requests
        that want it at the same time."""
        key = (name, tag)
        pending = self._checking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Digest] = asyncio.get_running_loop().create_future()
        self._checking[key] = future
        try:
            digest = await ask()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(digest)
            if self.tag_freshness > 0:
                if len(self._checked) >= MAX_CHECKED_TAGS:
                    self._checked.clear()
                self._checked[key] = (digest, time.monotonic())
            return digest
        finally:
            del self._checking[key]

    async def aclose(self) -> None:
        await self.fetches.aclose()
        await self.routes.aclose()
