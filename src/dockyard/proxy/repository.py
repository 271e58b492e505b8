"""A repository whose content comes from an upstream registry: manifests and blobs not
stored yet are fetched when asked for, and kept."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dockyard.index.locks import LockTimeout
from dockyard.proxy.errors import client_error
from dockyard.proxy.fetches import FetchFailed
from dockyard.proxy.metrics import PROXY_FETCHES, PROXY_STALE_SERVED, count_failure
from dockyard.proxy.routes import Route
from dockyard.proxy.upstream import UpstreamError, UpstreamNotFound
from dockyard.registry.blobs import BlobDescriptor, OpenedBlob, RepositoryBlobs
from dockyard.registry.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    Unavailable,
    Unsupported,
)
from dockyard.registry.manifests import RepositoryManifests, StoredManifest
from dockyard.registry.reference import Digest, is_tag
from dockyard.registry.registry import Registry, Repository

if TYPE_CHECKING:
    from dockyard.proxy.cache import PullThroughCache

log = logging.getLogger("dockyard.proxy")


class ProxiedRepository(Repository):
    def __init__(self, name: str, registry: Registry, route: Route,
                 cache: PullThroughCache) -> None:
        super().__init__(name, registry)
        self.route = route
        self.manifests = ProxiedManifests(self, cache)
        self.blobs = ProxiedBlobs(self, cache)

    async def check_writable(self) -> None:
        # distribution's answer, 405 UNSUPPORTED, with the reason.
        raise Unsupported(f"{self.name} is a pull-through cache of "
                          f"{self.route.upstream.url}: push to the upstream registry")

    async def check_deletable(self) -> None:
        await self.check_writable()

    async def tag_list(self) -> list[str] | None:
        """The upstream's tags of the repository (distribution lists them from there), or
        None when the upstream cannot say: then the cached tags are listed."""
        try:
            return sorted(set(await self.route.upstream.tags(self.route.remote_name)))
        except UpstreamNotFound:
            raise NameUnknown(detail={"name": self.name}) from None
        except UpstreamError as error:
            log.warning("listing the cached tags of %s: the upstream %s failed: %s",
                        self.name, self.route.upstream.url, error)
            return None


class ProxiedManifests(RepositoryManifests):
    """Manifests by tag are checked with the upstream (its HEAD's digest) so a moved tag
    is seen; by digest they never change, so a stored one is served without asking."""

    def __init__(self, repository: ProxiedRepository, cache: PullThroughCache) -> None:
        local = repository.manifests
        super().__init__(repository.name, local.blobs, repository.tags, local.cache,
                         repository.index, local.max_size)
        self.route = repository.route
        self.pull = cache

    async def get(self, reference: str) -> StoredManifest:
        if is_tag(reference):
            return await self._by_tag(reference)
        digest = Digest.parse(reference)
        if not await self.exists(digest):
            await self._keep(digest, None)
        return await super().get(reference)

    async def _by_tag(self, tag: str) -> StoredManifest:
        digest = self.pull.fresh_tag(self.name, tag)
        if digest is None:
            try:
                digest = await self.pull.check_tag(self.name, tag, lambda: self._ask(tag))
            except UpstreamNotFound:
                raise ManifestUnknown(detail={"tag": tag}) from None
            except UpstreamError as error:
                count_failure(self.route.upstream.url, error)
                # Stale-if-error: what the tag named when last fetched beats no answer.
                try:
                    stored = await super().get(tag)
                except ManifestUnknown:
                    raise client_error(error, ManifestUnknown, {"tag": tag}) from None
                log.warning("serving %s:%s from the cache: the upstream %s failed: %s",
                            self.name, tag, self.route.upstream.url, error)
                PROXY_STALE_SERVED.labels(self.route.upstream.url).inc()
                return stored
        if await self._current(tag) != digest:
            await self._keep(digest, tag)
        return await super().get(tag)

    async def _ask(self, tag: str) -> Digest:
        head = await self.route.upstream.head_manifest(self.route.remote_name, tag)
        return Digest.parse(head.digest)

    async def _current(self, tag: str) -> Digest | None:
        try:
            return await self.tags.resolve(tag)
        except ManifestUnknown:
            return None

    async def _keep(self, digest: Digest, tag: str | None) -> None:
        """Have the manifest (tagged `tag`, if given): fetched from the upstream unless
        it is here. One worker (of every process on the index) fetches it; the others wait
        for it and find it stored."""
        key = f"proxy-manifest:{self.name}@{digest}"
        try:
            async with self.index.locks.hold(key, timeout=self.pull.fetch_wait):
                await self._keep_held(digest, tag)
        except LockTimeout:
            await self._keep_held(digest, tag)  # a fetch stuck elsewhere: do it here

    async def _keep_held(self, digest: Digest, tag: str | None) -> None:
        if not await self.exists(digest):
            await self._fetch(str(digest), tag)
        elif tag is not None and await self._current(tag) != digest:
            # The tag moved upstream to a manifest this cache has: point it there.
            data = await self.blobs.get(digest)
            await self.store_pulled(tag, data, await self._media_type(digest, data))

    async def _fetch(self, digest: str, tag: str | None) -> None:
        """Fetch the manifest by digest from the upstream and keep it (tagged `tag`)."""
        try:
            pulled = await self.route.upstream.get_manifest(self.route.remote_name, digest)
        except UpstreamError as error:
            count_failure(self.route.upstream.url, error)
            raise client_error(error, ManifestUnknown, {"reference": tag or digest}) \
                from None
        await self.store_pulled(tag or digest, pulled.data or b"", pulled.media_type)
        PROXY_FETCHES.labels(self.route.upstream.url, "manifest").inc()
        log.info("cached manifest %s@%s%s", self.name, digest, f" ({tag})" if tag else "")


class ProxiedBlobs(RepositoryBlobs):
    """Blobs this repository has not stored yet come from the upstream: a HEAD asks it,
    a GET fetches the blob (joining a fetch of it under way) and stores it as it streams."""

    def __init__(self, repository: ProxiedRepository, cache: PullThroughCache) -> None:
        super().__init__(repository.name, repository.blobs.blobs, repository.index)
        self.route = repository.route
        self.uploads = repository.uploads
        self.pull = cache

    async def find(self, digest: Digest) -> BlobDescriptor | None:
        """What this repository has stored (never asks the upstream)."""
        try:
            return await super().describe(digest)
        except BlobUnknown:
            return None

    async def describe(self, digest: Digest) -> BlobDescriptor:
        stored = await self.find(digest)
        if stored is not None:
            return stored
        fetch = self.pull.fetches.in_flight(self.name, digest)
        if fetch is not None and fetch.size is not None:
            return BlobDescriptor(digest, fetch.size)
        try:
            size = await self.route.upstream.head_blob(self.route.remote_name, str(digest))
        except UpstreamError as error:
            count_failure(self.route.upstream.url, error)
            raise client_error(error, BlobUnknown, {"digest": str(digest)}) from None
        return BlobDescriptor(digest, size)

    async def open(self, digest: Digest) -> OpenedBlob:
        if await self.find(digest) is not None:
            return await super().open(digest)
        if await self.blobs.size(digest) is not None:
            # Stored for another repository: this one gets it once its upstream confirms
            # the repository has it (a client must not read through one repository what
            # only another may hold).
            try:
                await self.route.upstream.head_blob(self.route.remote_name, str(digest))
            except UpstreamError as error:
                count_failure(self.route.upstream.url, error)
                raise client_error(error, BlobUnknown, {"digest": str(digest)}) from None
            try:
                await self.link(digest)
                return await super().open(digest)
            except BlobUnknown:
                pass  # collected in between: fetched below
        try:
            fetched = await self.pull.fetches.open(self.route, self.uploads, digest)
        except UpstreamError as error:
            count_failure(self.route.upstream.url, error)
            raise client_error(error, BlobUnknown, {"digest": str(digest)}) from None
        except FetchFailed as error:
            raise Unavailable(f"fetching {digest} from the upstream registry failed: "
                              f"{error}", {"digest": str(digest)}) from error
        return OpenedBlob(digest, fetched.size, fetched.read)

    async def download_url(self, digest: Digest) -> str | None:
        if not await self.is_linked(digest):
            return None  # being fetched: served from the fetch
        return await super().download_url(digest)
