"""Cached content expires `ttl` after it was fetched (distribution's proxy rule): its
manifests (with their tags) and layer links go, and garbage collection then removes the
blobs nothing else uses. When each was fetched is in the store itself, the mtime of its
link, so the schedule survives restarts and needs no state of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard.config.model import UpstreamConfig
from dockyard.index.base import Index, IndexUnavailable
from dockyard.proxy.routes import upstream_of
from dockyard.registry import layout
from dockyard.registry.errors import BlobUnknown, ManifestUnknown
from dockyard.registry.read_only import ReadOnlyMode
from dockyard.registry.reference import Digest
from dockyard.registry.registry import Registry, RegistrySettings
from dockyard.storage import PathNotFound, StorageDriver

log = logging.getLogger("dockyard.proxy")


@dataclass
class ExpiryReport:
    manifests: list[str] = field(default_factory=list)  # name@digest
    layers: list[str] = field(default_factory=list)  # name@digest: links; data is GC's


async def expire_cached_content(driver: StorageDriver, index: Index,
                                upstreams: Sequence[UpstreamConfig], dry_run: bool = False,
                                now: float | None = None) -> ExpiryReport:
    """Remove (or with `dry_run`, list) what the caches fetched more than their ttl ago."""
    now = time.time() if now is None else now
    registry = Registry(driver, index, RegistrySettings(delete_enabled=True))
    report = ExpiryReport()
    for name in await registry.repositories():
        found = upstream_of(name, upstreams)
        if found is None or found[0].ttl <= 0:
            continue
        cutoff = now - found[0].ttl
        repository = registry.repository(name)
        for digest in await _expired(driver, layout.revisions(name, "sha256"), cutoff):
            report.manifests.append(f"{name}@{digest}")
            if not dry_run:
                with contextlib.suppress(ManifestUnknown):
                    await repository.manifests.delete(str(digest))
        for digest in await _expired(driver, f"{layout.repository(name)}/_layers/sha256",
                                     cutoff):
            report.layers.append(f"{name}@{digest}")
            if not dry_run:
                with contextlib.suppress(BlobUnknown):
                    await repository.blobs.unlink(digest)
    if report.manifests or report.layers:
        log.info("%s %d cached manifests and %d layer links older than their ttl",
                 "would expire" if dry_run else "expired", len(report.manifests),
                 len(report.layers))
    return report


async def _expired(driver: StorageDriver, directory: str, cutoff: float) -> list[Digest]:
    """The digests under `directory` (sha256/<hex>/link) whose link is older than cutoff."""
    try:
        entries = await driver.list(directory)
    except PathNotFound:
        return []
    digests = [Digest("sha256", entry.rsplit("/", 1)[-1]) for entry in entries]
    infos = await driver.stat_many([f"{directory}/{digest.hex}/link" for digest in digests])
    return [digest for digest, info in zip(digests, infos, strict=True)
            if info is not None and info.modified < cutoff]


EXPIRY_LOCK = "proxy-expiry"


def expiry_interval(upstreams: Sequence[UpstreamConfig]) -> float | None:
    """How often a server looks for expired content: a tenth of the shortest ttl, between a
    second and ten minutes; None when nothing expires."""
    ttls = [upstream.ttl for upstream in upstreams if upstream.ttl > 0]
    return min(600.0, max(1.0, min(ttls) / 10)) if ttls else None


async def expire_forever(driver: StorageDriver, index: Index,
                         upstreams: Sequence[UpstreamConfig], interval: float,
                         read_only: ReadOnlyMode | None = None) -> None:
    """Expire cached content every `interval`; one worker at a time (the others skip), and
    none while the registry is in read-only maintenance mode."""
    while True:
        await asyncio.sleep(interval)
        try:
            if read_only is not None and await read_only.is_on():
                continue
            async with index.locks.hold_if_free(EXPIRY_LOCK) as held:
                if held:
                    await expire_cached_content(driver, index, upstreams)
        except IndexUnavailable as error:
            log.error("expiring cached content failed: %s", error)
        except Exception:
            log.exception("expiring cached content failed")
