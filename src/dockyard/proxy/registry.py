"""A registry some (or all) of whose repositories are pull-through caches."""

from __future__ import annotations

from pathlib import Path

from dockyard.config.model import ProxyConfig
from dockyard.index.base import Index
from dockyard.proxy.cache import PullThroughCache
from dockyard.proxy.repository import ProxiedRepository
from dockyard.proxy.spool import sweep_abandoned
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.reference import validate_name
from dockyard.registry.registry import Registry, RegistrySettings, Repository
from dockyard.storage import StorageDriver


class CachingRegistry(Registry):
    def __init__(self, driver: StorageDriver, index: Index, settings: RegistrySettings,
                 proxy: ProxyConfig, spool_directory: Path,
                 events: EventLog = NO_EVENTS) -> None:
        super().__init__(driver, index, settings, events)
        self.cache = PullThroughCache(proxy, spool_directory, self.blobs)
        # Spools a worker that died left behind (one that is still fetching keeps its own).
        sweep_abandoned(spool_directory)

    def repository(self, name: str) -> Repository:
        name = validate_name(name)
        route = self.cache.routes.find(name)
        if route is None:
            return Repository(name, self)
        return ProxiedRepository(name, self, route, self.cache)

    async def aclose(self) -> None:
        await super().aclose()
        await self.cache.aclose()
