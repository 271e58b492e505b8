"""The registry: one object the API layer talks to, bound to a storage driver and settings."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from dockyard.config.limits import DEFAULT_MAX_MANIFEST_SIZE
from dockyard.index.base import Index
from dockyard.registry import catalog
from dockyard.registry.blobs import BlobStore, RepositoryBlobs
from dockyard.registry.errors import NameUnknown, Unsupported
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.gc_model import DEFAULT_GRACE_PERIOD
from dockyard.registry.gc_runs import GCRuns
from dockyard.registry.manifests import ManifestCache, RepositoryManifests
from dockyard.registry.read_only import ReadOnlyMode
from dockyard.registry.reference import validate_name
from dockyard.registry.reindex import reindex_repository
from dockyard.registry.tags import RepositoryTags
from dockyard.registry.uploads import RepositoryUploads, UploadStore
from dockyard.storage import StorageDriver


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    delete_enabled: bool = False
    read_only: bool = False
    max_manifest_size: int = DEFAULT_MAX_MANIFEST_SIZE
    max_uploads_per_repository: int = 1000
    # Blob GETs answered with a redirect to the storage where it can (storage.redirect).
    redirect_blob_reads: bool = True
    # storage.index.solewriter: garbage collection may look at what changed alone.
    sole_writer: bool = False
    # storage.gc.graceperiod: what a collection started by hand keeps unless told otherwise.
    gc_grace_period: float = DEFAULT_GRACE_PERIOD


class Repository:
    def __init__(self, name: str, registry: Registry) -> None:
        self.name = name
        self.registry = registry
        driver = registry.driver
        self.index = registry.index
        events = registry.events
        self.blobs = RepositoryBlobs(name, registry.blobs, registry.index, events)
        self.tags = RepositoryTags(name, driver, registry.index, events)
        self.manifests = RepositoryManifests(
            name, registry.blobs, self.tags, registry.manifest_cache, registry.index,
            registry.settings.max_manifest_size, events,
        )
        self.uploads: RepositoryUploads = registry.uploads.for_repository(name)

    async def check_writable(self) -> None:
        """Refuse a push (or any write) to this repository when it takes none."""
        await self.registry.check_writable()

    async def check_deletable(self) -> None:
        await self.registry.check_deletable()

    async def tag_list(self) -> list[str] | None:
        """The repository's tags where they come from elsewhere (a cache's upstream);
        None: from this registry's own index, as usual."""
        return None

    async def exists(self) -> bool:
        return await self.index.has_repository(self.name)

    async def require_exists(self) -> None:
        """The index knows every repository dockyard wrote; one it does not know may
        have been written by another registry on the same store since the last look.
        While the index is first being built, the repository is read from the store
        (the build may not have reached it, or a push may have indexed only part of it)."""
        if not await self.registry.index_is_complete():
            if await reindex_repository(self.registry.driver, self.index, self.name):
                return
        elif await self.exists() or await reindex_repository(self.registry.driver,
                                                             self.index, self.name):
            return
        raise NameUnknown(detail={"name": self.name})

    async def catch_up_while_index_builds(self) -> None:
        """Read the repository from the store into the index if the index is still being
        built (see require_exists)."""
        if not await self.registry.index_is_complete():
            await reindex_repository(self.registry.driver, self.index, self.name)


class Registry:
    def __init__(self, driver: StorageDriver, index: Index,
                 settings: RegistrySettings | None = None, events: EventLog = NO_EVENTS
                 ) -> None:
        self.driver = driver
        self.index = index
        self.settings = settings or RegistrySettings()
        # Notification events, written to the index's outbox with each change.
        self.events = events
        self.blobs = BlobStore(driver, self.settings.redirect_blob_reads)
        self.uploads = UploadStore(self.blobs, index,
                                   self.settings.max_uploads_per_repository, events)
        # storage.maintenance.readonly, and what an operator switched since.
        self.read_only = ReadOnlyMode(index, self.settings.read_only)
        self.gc = GCRuns(driver, index, self.read_only, self.settings.sole_writer,
                         self.settings.gc_grace_period)
        self.manifest_cache = ManifestCache()
        self._index_complete = False  # once true, it stays so

    async def index_is_complete(self) -> bool:
        """Whether the index has been built from the whole store (it is built in the
        background on the first start on a store: until then, listings read the store)."""
        if not self._index_complete:
            self._index_complete = await self.index.is_complete()
        return self._index_complete

    def repository(self, name: str) -> Repository:
        return Repository(validate_name(name), self)

    async def aclose(self) -> None:
        """Release what the registry holds beyond its index (which its owner closes)."""
        await self.events.aclose()  # pull events not yet written

    async def check_writable(self) -> None:
        await self.read_only.check_writable()

    async def check_deletable(self) -> None:
        if not self.settings.delete_enabled:
            raise Unsupported("deletes are disabled (set storage.delete.enabled: true)")
        await self.check_writable()

    async def metadata_version(self) -> Hashable:
        """A value that changes whenever repositories, tags or manifests may have changed
        (in any process): what may be cached for as long as it stays the same."""
        return await self.index.version()

    async def repositories(self, last: str | None = None, limit: int | None = None
                           ) -> list[str]:
        """Repository names in order, from the index; from a walk of the store, as
        distribution lists them, while the index is first being built."""
        if await self.index_is_complete():
            return await self.index.repositories(last, limit)
        names = [name for name in await catalog.list_repositories(self.driver)
                 if name > (last or "")]
        return names if limit is None else names[:limit]
