"""What the domain asks of the metadata index, whichever database holds it.

Two implementations answer: the embedded SQLite file beside the store (one host), and
PostgreSQL (several registries over one object store). Every method is a coroutine, so a
remote database never blocks the event loop; the embedded one answers without suspending.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    references: tuple[str, ...] = ()
    # The size each reference's descriptor gives, in the order of `references`.
    reference_sizes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferrerRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations_json: str | None  # a JSON object, as record_manifest stored it


@dataclass(frozen=True, slots=True)
class RepositoryContents:
    """Everything the index holds for one repository, as a rebuild writes it."""

    name: str
    tags: dict[str, str]
    manifests: list[ManifestRecord]
    layers: list[str]

    def snapshot(self) -> RepositorySnapshot:
        return RepositorySnapshot(dict(self.tags),
                                  frozenset(record.digest for record in self.manifests),
                                  frozenset(self.layers))


@dataclass(frozen=True, slots=True)
class RepositorySnapshot:
    """What the index (or the store) holds for one repository, for comparing the two."""

    tags: dict[str, str]
    manifests: frozenset[str]
    layers: frozenset[str]


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    name: str
    tags: int
    size: int  # what its tags reach, each blob once (see index.summaries)
    pushed: float | None  # when a layer was last linked into it; None: not known


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: str
    digest: str
    media_type: str
    size: int  # of the manifest itself
    artifact_type: str | None
    pushed: float | None = None  # when pushed through dockyard; None: not known


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """How far one notification endpoint has been given the outbox's events."""

    endpoint: str
    delivered: int  # the id of the last event sent to it (or skipped: not for it)
    sent: int  # events sent since it was first configured
    failures: int  # attempts failed in a row
    last_error: str | None = None
    last_attempt: float | None = None
    last_success: float | None = None


class SchemaMismatch(Exception):
    """The database's schema is not the one this version of dockyard knows: newer (written
    by a later dockyard), or older with migrations still to run."""


class IndexUnavailable(Exception):
    """The index's database cannot be reached (or went away mid-transaction): the request
    may succeed when tried again."""


class Locks(Protocol):
    """One holder per key across every process and host sharing the index."""

    def hold(self, key: str, timeout: float | None = None
             ) -> AbstractAsyncContextManager[None]:
        """Wait (up to `timeout` seconds, or forever) until `key` is ours, then hold it;
        LockTimeout if the wait runs out."""
        ...

    def hold_if_free(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold `key` if nobody does (yields True), else yield False at once."""
        ...


class IndexWrite(Protocol):
    """One write transaction: exclusive against every other writer of the index, in any
    process or host. Storage changes made inside it are atomic with respect to them: this
    is how a manifest's blob check and garbage collection's delete exclude each other."""

    # Writes, each made after the store was changed.
    async def record_blob(self, digest: str, size: int) -> None:
        """A blob has just been made visible."""

    async def link_layer(self, repository: str, digest: str) -> None:
        """A layer link of `repository` has just been written (or written again)."""

    async def record_manifest(self, repository: str, record: ManifestRecord,
                              tag: str | None) -> None:
        """A manifest, the blobs it needs, and the tag naming it."""

    async def forget_manifest(self, repository: str, digest: str) -> None:
        """A manifest revision and every tag on it are gone."""

    async def replace_repository(self, item: RepositoryContents) -> None:
        """Make the index's view of a repository exactly `item`."""

    async def delete_repository(self, name: str) -> None: ...

    async def snapshot(self, name: str) -> RepositorySnapshot:
        """What the index holds for one repository now (empty if nothing)."""
        ...

    async def forget_repositories(self, names: Sequence[str]) -> None:
        """Repositories removed from the store (their layer-link times too)."""

    async def forget_blobs(self, digests: Sequence[str]) -> None:
        """Blobs deleted from the store, and every layer link to them."""

    # Garbage candidates: every blob recorded, and what each forgotten manifest, layer link
    # or repository named, is one until a collection has looked at it.
    async def forget_candidates(self, digests: Sequence[str]) -> None:
        """Candidates a collection has settled (gone from the store, or not there)."""

    async def forget_referenced_candidates(self) -> int:
        """Drop the candidates some manifest is or needs now; how many."""
        ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def add_events(self, bodies: Sequence[str]) -> None:
        """Notification events (JSON texts) describing this transaction's changes."""

    async def delete_meta(self, key: str, value_prefix: str = "") -> None:
        """Delete `key` if its value starts with `value_prefix`."""

    # Reads that decide what the transaction deletes: they see every commit before it.
    async def get_meta(self, key: str) -> str | None: ...

    async def referenced_among(self, digests: Sequence[str]) -> set[str]:
        """Which of `digests` a manifest is, or needs."""

    async def blobs_created(self, digests: Sequence[str]) -> dict[str, tuple[int, float]]:
        """(size, created) of those of `digests` committed through dockyard."""

    async def links_among(self, digests: Sequence[str]) -> list[tuple[str, str]]:
        """(repository, digest) of every repository's layer link to one of `digests`."""

    async def with_manifests_among(self, names: Sequence[str]) -> set[str]: ...

    async def linked_since(self, names: Sequence[str], since: float) -> set[str]:
        """Those of `names` a layer link was written in at or after `since`."""

    async def is_needed(self, repository: str, digest: str) -> bool:
        """Whether a tag names the manifest or another manifest of its repository needs it."""


class Index(Protocol):
    locks: Locks

    def writing(self) -> AbstractAsyncContextManager[IndexWrite]:
        """One write transaction (see IndexWrite)."""
        ...

    async def aclose(self) -> None:
        """Give back what is bound to the running event loop (connections); the index may
        be used again from another loop afterwards."""

    def close(self) -> None:
        """Done with the index for good."""

    # State of the index as a whole.
    async def version(self) -> Hashable:
        """Moves on every commit, in any process or host: what may be cached for as long
        as it stays the same."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def is_complete(self) -> bool:
        """Whether a full build from the store finished with the current schema."""
        ...

    async def mark_complete(self) -> None: ...

    # Single changes, each in a transaction of its own with the notification events
    # describing it.
    async def add_layer(self, repository: str, digest: str) -> None: ...

    async def remove_layer(self, repository: str, digest: str, events: Sequence[str] = ()
                           ) -> None: ...

    async def remove_tag(self, repository: str, tag: str, events: Sequence[str] = ()
                         ) -> None: ...

    async def remove_manifest(self, repository: str, digest: str, events: Sequence[str] = ()
                              ) -> None: ...

    async def remove_repository(self, name: str, events: Sequence[str] = ()) -> None: ...

    # The notification outbox (index.outbox).
    async def add_events(self, bodies: Sequence[str]) -> None:
        """Events that describe no change of the index (pulls), in a transaction alone."""

    async def events_after(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(id, body) of the events after id `after`, oldest first."""
        ...

    async def count_events_after(self, after: int) -> int: ...

    async def delivery_states(self) -> dict[str, DeliveryState]: ...

    async def start_delivery(self, endpoint: str) -> DeliveryState:
        """The endpoint's cursor, made at the newest event if it has none."""
        ...

    async def record_delivery(self, state: DeliveryState) -> None: ...

    async def drop_delivered_events(self, endpoints: Sequence[str]) -> None:
        """Drop the events all of `endpoints` have."""

    # Reads for the API.
    async def repositories(self, last: str | None = None, limit: int | None = None
                           ) -> list[str]: ...

    async def has_repository(self, name: str) -> bool: ...

    async def tags_of(self, repository: str, digest: str) -> list[str]:
        """The tags naming a manifest, in order."""
        ...

    async def tags(self, repository: str, last: str | None = None, limit: int | None = None
                   ) -> list[str]: ...

    async def tag_push_times(self, repository: str) -> list[tuple[str, str, float | None]]:
        """(tag, digest, when it was pushed through dockyard, or None) of every tag."""
        ...

    def referrers(self, repository: str, subject: str, artifact_type: str | None,
                  after: str | None = None) -> AsyncGenerator[ReferrerRow, None]:
        """Manifests whose subject is `subject`, in digest order after `after`, read as the
        caller asks for them: one that stops early never loads the rest (some carry
        megabytes of annotations)."""
        ...

    # Whole-index reads for garbage collection, re-sync and disk usage: a few queries,
    # whatever the number of repositories.
    async def snapshots(self) -> dict[str, RepositorySnapshot]: ...

    async def repositories_without_manifests(self) -> list[str]: ...

    async def referenced_digests(self) -> set[str]:
        """Every digest some manifest is or needs (a snapshot; re-check when deleting)."""
        ...

    async def all_manifests(self) -> list[tuple[str, str, str | None]]:
        """(repository, digest, subject) of every manifest."""
        ...

    async def all_tagged(self) -> list[tuple[str, str]]: ...

    async def references_of(self, repository: str, digest: str) -> list[str]: ...

    async def tag_counts(self) -> dict[str, int]: ...

    async def manifest_entries(self) -> dict[tuple[str, str], tuple[int, str | None]]:
        """(repository, digest) of every manifest -> (size, subject)."""
        ...

    async def all_references(self) -> dict[tuple[str, str], list[str]]:
        """(repository, manifest) -> what it needs (config, layers, an index's children)."""
        ...

    async def all_blobs_created(self) -> dict[str, float]:
        """When each blob committed through dockyard was committed."""
        ...

    async def gc_candidates(self) -> list[str]:
        """The digests that may have become garbage since a collection last looked (see
        IndexWrite.forget_candidates), in order."""
        ...

    # Browsing (index.summaries): pages found by a part of a name, and sizes.
    async def count_repositories(self, contains: str = "") -> int: ...

    async def find_repositories(self, contains: str, offset: int, limit: int) -> list[str]:
        ...

    async def repository_summaries(self, names: Sequence[str] | None = None
                                   ) -> dict[str, RepositorySummary]: ...

    async def count_tags(self, repository: str, contains: str = "") -> int: ...

    async def tag_page(self, repository: str, contains: str, offset: int, limit: int
                       ) -> list[TagRow]: ...

    async def reach_sizes(self, repository: str, digests: Sequence[str]) -> dict[str, int]:
        ...

    async def manifest_digests(self, repository: str) -> list[str]: ...

    async def stored_size(self) -> tuple[int, int]:
        """(count, bytes) of the distinct blobs and manifests the tags reach."""
        ...

    async def entry_counts(self) -> dict[str, int]:
        """Repositories, tags, manifests and blobs in the index (by those names), and
        `blob_bytes`, the size of its blobs."""
        ...
