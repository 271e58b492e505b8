"""What a person browsing the registry sees: repositories, their tags and the images behind
them, read from the index and, for the few items on one page, the store.

Nothing here walks the store: lists and sizes come from the index (`index.summaries`);
reading a page's manifests and image configs costs one small read each, and image configs,
which never change for a digest, are kept in memory.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from dockyard.index.base import ReferrerRow, RepositorySummary, TagRow
from dockyard.registry import layout, mediatypes
from dockyard.registry.errors import BlobUnknown, ManifestUnknown, RegistryError
from dockyard.registry.reference import Digest, is_tag
from dockyard.registry.registry import Registry

Visible = Callable[[str], bool]  # whether the person browsing may see a repository
SORTS = ("name", "size", "pushed")
CONFIG_CACHE_ENTRIES = 4096
SUMMARY_CACHE_ENTRIES = 256
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str
    digest: str
    size: int

    @property
    def name(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True, slots=True)
class HistoryStep:
    created: float | None
    command: str
    empty_layer: bool


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What an image's config says of it."""

    created: float | None
    platform: str
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: list[str]
    workdir: str
    user: str
    labels: dict[str, str]
    exposed_ports: list[str]
    history: list[HistoryStep]


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    command: str = ""  # for a layer: the history step that made it, where known


@dataclass(frozen=True, slots=True)
class TagView:
    tag: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int  # what the tag reaches, each blob once
    pushed: float | None
    created: float | None
    platforms: list[str]


@dataclass(slots=True)
class ManifestView:
    repository: str
    reference: str
    digest: str
    media_type: str
    data: bytes
    document: dict[str, Any]
    pushed: float | None
    tags: list[str]
    total_size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    platforms: list[Platform] = field(default_factory=list)
    config_descriptor: Descriptor | None = None
    config: ImageConfig | None = None
    layers: list[Descriptor] = field(default_factory=list)
    referrers: list[ReferrerRow] = field(default_factory=list)

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES or bool(self.document.get("manifests"))


@dataclass(frozen=True, slots=True)
class StorageView:
    repositories: int
    blobs: int
    size: int  # every blob and manifest tags reach, once however many repositories share it


class Browser:
    """Read-only views of one registry, for the web UI."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._configs: OrderedDict[str, ImageConfig | None] = OrderedDict()
        self._facts: OrderedDict[str, tuple[list[str], str | None]] = OrderedDict()
        self._summaries: tuple[Hashable, dict[str, RepositorySummary]] | None = None
        self._summaries_lock = asyncio.Lock()
        self._sorted: dict[str, list[RepositorySummary]] = {}  # by sort, for `_summaries`
        # One repository's summary, until the index next changes: a repository of many
        # tags costs tens of milliseconds to sum up.
        self._summary: OrderedDict[str, tuple[Hashable, RepositorySummary]] = OrderedDict()

    async def repositories(self, contains: str = "", sort: str = "name",
                           descending: bool = False, offset: int = 0, limit: int = 50,
                           visible: Visible | None = None) -> Page[RepositorySummary]:
        """A page of repositories whose name contains `contains`, sorted by name, size or
        last push. By name, only the page is read; by size or push time every repository's
        summary is needed, kept until the index next changes."""
        index = self.registry.index
        contains = contains.strip().lower()
        if sort == "name" and visible is None and not descending:
            names = await index.find_repositories(contains, offset, limit)
            total = await index.count_repositories(contains)
            found = await index.repository_summaries(names)
            return Page([found[name] for name in names], total, offset, limit)
        if sort == "name":
            # A person allowed only some repositories: the names, then the page of them.
            every = await index.find_repositories(contains, 0, 10**9)
            names = [name for name in every if visible is None or visible(name)]
            if descending:
                names.reverse()
            chosen = names[offset:offset + limit]
            found = await index.repository_summaries(chosen)
            return Page([found[name] for name in chosen], len(names), offset, limit)
        ordered = await self._sorted_summaries(sort)
        if not contains and visible is None:
            # Everyone's list, unfiltered: the page is a slice of the kept order.
            total = len(ordered)
            if not descending:
                return Page(ordered[offset:offset + limit], total, offset, limit)
            end = max(total - offset, 0)
            return Page(ordered[max(end - limit, 0):end][::-1], total, offset, limit)
        summaries = [summary for summary in (reversed(ordered) if descending else ordered)
                     if contains in summary.name and (visible is None or visible(summary.name))]
        return Page(summaries[offset:offset + limit], len(summaries), offset, limit)

    async def _all_summaries(self) -> dict[str, RepositorySummary]:
        async with self._summaries_lock:  # one reader computes; the others wait for it
            version = await self.registry.metadata_version()
            if self._summaries is None or self._summaries[0] != version:
                self._summaries = (version, await self.registry.index.repository_summaries())
                self._sorted.clear()
            return self._summaries[1]

    async def _sorted_summaries(self, sort: str) -> list[RepositorySummary]:
        """Every repository's summary, smallest (or oldest push) first, names breaking ties;
        sorted once and kept with the summaries (100,000 of them take about 50 ms)."""
        summaries = await self._all_summaries()
        ordered = self._sorted.get(sort)
        if ordered is None:
            if sort == "size":
                ordered = sorted(summaries.values(), key=lambda item: (item.size, item.name))
            else:
                ordered = sorted(summaries.values(),
                                 key=lambda item: (item.pushed or 0.0, item.name))
            self._sorted[sort] = ordered
        return ordered

    async def summary(self, name: str) -> RepositorySummary:
        repository = self.registry.repository(name)
        await repository.require_exists()
        version = await self.registry.metadata_version()
        kept = self._summary.get(name)
        if kept is not None and kept[0] == version:
            self._summary.move_to_end(name)
            return kept[1]
        if self._summaries is not None and self._summaries[0] == version \
                and name in self._summaries[1]:
            summary = self._summaries[1][name]
        else:
            found = await self.registry.index.repository_summaries([name])
            summary = found.get(name) or RepositorySummary(name, 0, 0, None)
        self._summary[name] = (version, summary)
        while len(self._summary) > SUMMARY_CACHE_ENTRIES:
            self._summary.popitem(last=False)
        return summary

    async def tags(self, name: str, contains: str = "", offset: int = 0, limit: int = 100
                   ) -> Page[TagView]:
        index = self.registry.index
        rows = await index.tag_page(name, contains.strip(), offset, limit)
        total = await index.count_tags(name, contains.strip())
        sizes = await index.reach_sizes(name, list({row.digest for row in rows}))
        details = await asyncio.gather(*(self._tag_details(name, row) for row in rows))
        views = [TagView(row.tag, row.digest, row.media_type, row.artifact_type,
                         sizes.get(row.digest, row.size), pushed, created, platforms)
                 for row, (pushed, created, platforms) in zip(rows, details, strict=True)]
        return Page(views, total, offset, limit)

    async def _tag_details(self, name: str, row: TagRow
                           ) -> tuple[float | None, float | None, list[str]]:
        """When the tag was pushed (as the index recorded it; for a tag another registry
        wrote, its link's mtime), when its image was made (its config), and the platforms
        of an index."""
        pushed = row.pushed
        if pushed is None:
            info, (platforms, config) = await asyncio.gather(
                self.registry.driver.stat(layout.tag_current_link(name, row.tag)),
                self._manifest_facts(name, row.digest))
            pushed = None if info is None else info.modified
        else:
            platforms, config = await self._manifest_facts(name, row.digest)
        created = None
        if config is not None:
            image = await self._image_config(config)
            created = None if image is None else image.created
        return pushed, created, platforms

    async def _manifest_facts(self, name: str, digest: str) -> tuple[list[str], str | None]:
        """The platforms of an index and the config digest of an image, read once per
        digest (a manifest never changes)."""
        known = self._facts.get(digest)
        if known is not None:
            self._facts.move_to_end(digest)
            return known
        try:
            data = await self.registry.repository(name).manifests.content(Digest.parse(digest))
            document = json.loads(data)
        except (RegistryError, ValueError):
            return [], None  # not kept: it may be readable later
        facts: tuple[list[str], str | None] = ([], None)
        if isinstance(document, dict):
            config = _descriptor(document.get("config"))
            facts = ([platform.name for platform in _platforms(document) if platform.name],
                     None if config is None else config.digest)
        self._facts[digest] = facts
        while len(self._facts) > CONFIG_CACHE_ENTRIES:
            self._facts.popitem(last=False)
        return facts

    async def manifest(self, name: str, reference: str) -> ManifestView:
        repository = self.registry.repository(name)
        await repository.require_exists()
        stored = await repository.manifests.get(reference)
        try:
            document = json.loads(stored.data)
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        digest = str(stored.digest)
        index = self.registry.index
        tags = await index.tags_of(name, digest)
        sizes = await index.reach_sizes(name, [digest])
        pushed = stored.modified
        if is_tag(reference):  # the tag's push; for the manifest, its revision's
            info = await self.registry.driver.stat(layout.revision_link(name, stored.digest))
            pushed = pushed if info is None else info.modified
        annotations = document.get("annotations")
        subject = _descriptor(document.get("subject"))
        view = ManifestView(
            name, reference, digest, stored.media_type, stored.data, document, pushed, tags,
            sizes.get(digest, stored.size),
            artifact_type=_text(document.get("artifactType")) or None,
            annotations={str(key): str(value) for key, value in annotations.items()}
            if isinstance(annotations, dict) else {},
            subject=None if subject is None else subject.digest,
            platforms=_platforms(document),
            config_descriptor=_descriptor(document.get("config")),
        )
        if view.config_descriptor is not None:
            view.config = await self._image_config(view.config_descriptor.digest)
        view.layers = _layers(document, view.config)
        rows = index.referrers(name, digest, None)
        try:
            async for row in rows:
                view.referrers.append(row)
                if len(view.referrers) >= 200:
                    break
        finally:
            await rows.aclose()
        return view

    async def _image_config(self, digest: str) -> ImageConfig | None:
        if digest in self._configs:
            self._configs.move_to_end(digest)
            return self._configs[digest]
        try:
            parsed = Digest.parse(digest)
            size = await self.registry.blobs.size(parsed)
            # An image config is small; anything large is some other artifact's blob.
            data = await self.registry.blobs.get(parsed) if size and size <= 4 << 20 else b""
            config = _config(json.loads(data)) if data else None
        except (RegistryError, ValueError, BlobUnknown):
            config = None
        self._configs[digest] = config
        if len(self._configs) > CONFIG_CACHE_ENTRIES:
            self._configs.popitem(last=False)
        return config

    async def storage(self) -> StorageView:
        index = self.registry.index
        blobs, size = await index.stored_size()
        return StorageView(await index.count_repositories(), blobs, size)

    async def delete_repository(self, name: str) -> list[str]:
        """Delete every manifest of a repository (its tags go with them); garbage collection
        then frees its blobs and removes the empty repository. Returns what went."""
        repository = self.registry.repository(name)
        await repository.check_deletable()
        await repository.require_exists()
        deleted = []
        for digest in await self.registry.index.manifest_digests(name):
            try:
                await repository.manifests.delete(digest)
            except ManifestUnknown:
                continue  # deleted meanwhile, or with an index that listed it
            deleted.append(digest)
        return deleted


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _descriptor(value: Any) -> Descriptor | None:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        return None
    size = value.get("size")
    return Descriptor(_text(value.get("mediaType")), value["digest"],
                      size if isinstance(size, int) else 0)


def _platforms(document: dict[str, Any]) -> list[Platform]:
    found = []
    for item in document.get("manifests") or []:
        descriptor = _descriptor(item)
        if descriptor is None:
            continue
        platform = _mapping(item.get("platform"))
        found.append(Platform(_text(platform.get("os")), _text(platform.get("architecture")),
                              _text(platform.get("variant")), descriptor.digest,
                              descriptor.size))
    return found


def _layers(document: dict[str, Any], config: ImageConfig | None) -> list[Descriptor]:
    """The layers, each with the history step that made it (history lists steps that made
    no layer too: those are skipped)."""
    steps = [step.command for step in (config.history if config else []) if not step.empty_layer]
    layers = []
    for position, item in enumerate(document.get("layers") or []):
        descriptor = _descriptor(item)
        if descriptor is not None:
            command = steps[position] if position < len(steps) else ""
            layers.append(Descriptor(descriptor.media_type, descriptor.digest,
                                     descriptor.size, command))
    return layers


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Go writes nanoseconds; Python reads at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(char for char in tail if char.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year <= 1970:  # reproducible builds stamp the epoch: no date at all
        return None
    return moment.timestamp()


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list):
        return [str(item) for item in value]
    return None


def _config(document: Any) -> ImageConfig | None:
    if not isinstance(document, dict):
        return None
    inner = _mapping(document.get("config"))
    labels = _mapping(inner.get("Labels"))
    ports = _mapping(inner.get("ExposedPorts"))
    history = []
    for step in document.get("history") or []:
        if isinstance(step, dict):
            history.append(HistoryStep(_timestamp(step.get("created")),
                                       _text(step.get("created_by")),
                                       step.get("empty_layer") is True))
    platform = "/".join(part for part in (_text(document.get("os")),
                                          _text(document.get("architecture")),
                                          _text(document.get("variant"))) if part)
    return ImageConfig(
        created=_timestamp(document.get("created")),
        platform=platform,
        entrypoint=_strings(inner.get("Entrypoint")),
        cmd=_strings(inner.get("Cmd")),
        env=_strings(inner.get("Env")) or [],
        workdir=_text(inner.get("WorkingDir")),
        user=_text(inner.get("User")),
        labels={str(key): str(value) for key, value in labels.items()},
        exposed_ports=sorted(str(port) for port in ports),
        history=history,
    )
