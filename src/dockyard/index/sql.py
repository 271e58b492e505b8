"""The index's queries, written once for both databases.

They use the SQL SQLite and PostgreSQL share (`ON CONFLICT` upserts, `?` placeholders that
the PostgreSQL connection rewrites); each database supplies only its connections, its
transactions and its schema.
"""

from __future__ import annotations

import itertools
import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from dockyard.index.base import (
    IndexWrite,
    Locks,
    ManifestRecord,
    ReferrerRow,
    RepositoryContents,
    RepositorySnapshot,
)
from dockyard.index.outbox import OutboxQueries, insert_events
from dockyard.index.summaries import SummaryQueries

Row = tuple[Any, ...]
# Referrers are read this many rows at a time (some carry megabytes of annotations).
REFERRER_BATCH = 16
# The repositories a layer-link time, a tag or a layer belong to, deleted with them.
REPOSITORY_TABLES = ("tags", "manifests", "layers", "manifest_references", "links_written")


class Statements(Protocol):
    """One database connection, as the queries below use it."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


BUILT_KEY = "built"
META_UPSERT = ("INSERT INTO meta (key, value) VALUES (?, ?) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


class SQLWrite(IndexWrite):
    def __init__(self, db: Statements) -> None:
        self.db = db

    async def record_blob(self, digest: str, size: int) -> None:
        await self.db.execute(
            "INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?) ON CONFLICT (digest) "
            "DO UPDATE SET size = excluded.size, created = excluded.created",
            (digest, size, time.time()))
        # Garbage until a manifest needs it (an upload whose manifest never comes).
        await self.db.execute(
            "INSERT INTO gc_candidates (digest) VALUES (?) ON CONFLICT DO NOTHING", (digest,))

    async def _note_candidates(self, where: str, params: Sequence[Any]) -> None:
        """What the rows `where` selects (of manifests, their references and layer links)
        name may be garbage once they go."""
        await self.db.execute(
            "INSERT INTO gc_candidates (digest) "
            f"SELECT digest FROM manifest_references WHERE {where.format(manifest='manifest')}"
            f" UNION SELECT digest FROM manifests WHERE {where.format(manifest='digest')}"
            f" UNION SELECT digest FROM layers WHERE {where.format(manifest='digest')}"
            " ON CONFLICT DO NOTHING", (*params, *params, *params))

    async def _add_repository(self, name: str) -> None:
        await self.db.execute(
            "INSERT INTO repositories (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))

    async def link_layer(self, repository: str, digest: str) -> None:
        await self._add_repository(repository)
        await self.db.execute("INSERT INTO layers (repository, digest) VALUES (?, ?) "
                              "ON CONFLICT DO NOTHING", (repository, digest))
        await self.db.execute(
            "INSERT INTO links_written (repository, at) VALUES (?, ?) "
            "ON CONFLICT (repository) DO UPDATE SET at = excluded.at",
            (repository, time.time()))

    async def record_manifest(self, repository: str, record: ManifestRecord,
                              tag: str | None) -> None:
        await self._add_repository(repository)
        await self._insert_manifest(repository, record)
        if tag is not None:
            await self.db.execute(
                "INSERT INTO tags (repository, tag, digest, pushed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, "
                "pushed = excluded.pushed", (repository, tag, record.digest, time.time()))

    async def _insert_manifest(self, repository: str, record: ManifestRecord) -> None:
        await self.db.execute(
            "INSERT INTO manifests (repository, digest, media_type, size, subject,"
            " artifact_type, annotations) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (repository, digest) DO UPDATE SET media_type = excluded.media_type,"
            " size = excluded.size, subject = excluded.subject,"
            " artifact_type = excluded.artifact_type, annotations = excluded.annotations",
            (repository, record.digest, record.media_type, record.size, record.subject,
             record.artifact_type,
             json.dumps(record.annotations) if record.annotations else None))
        if record.references:
            await self.db.execute_many(
                "INSERT INTO manifest_references (repository, manifest, digest, size) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(repository, record.digest, digest, size) for digest, size in
                 itertools.zip_longest(record.references, record.reference_sizes[
                     :len(record.references)])])

    async def forget_manifest(self, repository: str, digest: str) -> None:
        await self._note_candidates("repository = ? AND {manifest} = ?", (repository, digest))
        for table in ("tags", "manifests"):
            await self.db.execute(f"DELETE FROM {table} WHERE repository = ? AND digest = ?",
                                  (repository, digest))
        await self.db.execute(
            "DELETE FROM manifest_references WHERE repository = ? AND manifest = ?",
            (repository, digest))

    async def replace_repository(self, item: RepositoryContents) -> None:
        # A tag that still names the same manifest keeps the push time recorded for it.
        pushed = {(row[0], row[1]): row[2] for row in await self.db.fetch_all(
            "SELECT tag, digest, pushed FROM tags WHERE repository = ? AND pushed IS NOT NULL",
            (item.name,))}
        await self.delete_repository(item.name)
        await self.db.execute("INSERT INTO repositories (name) VALUES (?)", (item.name,))
        if item.tags:
            await self.db.execute_many(
                "INSERT INTO tags (repository, tag, digest, pushed) VALUES (?, ?, ?, ?)",
                [(item.name, tag, digest, pushed.get((tag, digest)))
                 for tag, digest in item.tags.items()])
        for record in item.manifests:
            await self._insert_manifest(item.name, record)
        if item.layers:
            await self.db.execute_many("INSERT INTO layers (repository, digest) VALUES (?, ?)",
                                       [(item.name, digest) for digest in item.layers])

    async def snapshot(self, name: str) -> RepositorySnapshot:
        tags = {row[0]: row[1] for row in await self.db.fetch_all(
            "SELECT tag, digest FROM tags WHERE repository = ?", (name,))}
        manifests = frozenset(row[0] for row in await self.db.fetch_all(
            "SELECT digest FROM manifests WHERE repository = ?", (name,)))
        layers = frozenset(row[0] for row in await self.db.fetch_all(
            "SELECT digest FROM layers WHERE repository = ?", (name,)))
        return RepositorySnapshot(tags, manifests, layers)

    async def delete_repository(self, name: str) -> None:
        await self._note_candidates("repository = ?", (name,))
        # The layer-link time stays: it says when the repository was last linked into.
        for table in REPOSITORY_TABLES[:-1]:
            await self.db.execute(f"DELETE FROM {table} WHERE repository = ?", (name,))
        await self.db.execute("DELETE FROM repositories WHERE name = ?", (name,))

    async def forget_repositories(self, names: Sequence[str]) -> None:
        if not names:
            return
        await self._note_candidates(f"repository IN ({marks(names)})", names)
        for table in REPOSITORY_TABLES:
            await self.db.execute(f"DELETE FROM {table} WHERE repository IN ({marks(names)})",
                                  names)
        await self.db.execute(f"DELETE FROM repositories WHERE name IN ({marks(names)})",
                              names)

    async def forget_blobs(self, digests: Sequence[str]) -> None:
        if not digests:
            return
        for table in ("blobs", "layers", "gc_candidates"):
            await self.db.execute(f"DELETE FROM {table} WHERE digest IN ({marks(digests)})",
                                  digests)

    async def forget_candidates(self, digests: Sequence[str]) -> None:
        if digests:
            await self.db.execute(
                f"DELETE FROM gc_candidates WHERE digest IN ({marks(digests)})", digests)

    async def forget_referenced_candidates(self) -> int:
        """Drop the candidates some manifest is or needs now (if they lose it later, that
        makes them candidates again); how many went."""
        rows = await self.db.fetch_all(
            "DELETE FROM gc_candidates WHERE digest IN (SELECT digest FROM manifests) "
            "OR digest IN (SELECT digest FROM manifest_references) RETURNING digest")
        return len(rows)

    async def add_events(self, bodies: Sequence[str]) -> None:
        await insert_events(self.db, bodies)

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(META_UPSERT, (key, value))

    async def delete_meta(self, key: str, value_prefix: str = "") -> None:
        rows = await self.db.fetch_all("SELECT value FROM meta WHERE key = ?", (key,))
        if rows and str(rows[0][0]).startswith(value_prefix):
            await self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    async def get_meta(self, key: str) -> str | None:
        return await get_meta(self.db, key)

    async def referenced_among(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        found = marks(digests)
        return {row[0] for row in await self.db.fetch_all(
            f"SELECT digest FROM manifest_references WHERE digest IN ({found}) UNION "
            f"SELECT digest FROM manifests WHERE digest IN ({found})", (*digests, *digests))}

    async def blobs_created(self, digests: Sequence[str]) -> dict[str, tuple[int, float]]:
        if not digests:
            return {}
        return {row[0]: (int(row[1]), float(row[2])) for row in await self.db.fetch_all(
            f"SELECT digest, size, created FROM blobs WHERE digest IN ({marks(digests)})",
            digests)}

    async def links_among(self, digests: Sequence[str]) -> list[tuple[str, str]]:
        if not digests:
            return []
        return [(row[0], row[1]) for row in await self.db.fetch_all(
            f"SELECT repository, digest FROM layers WHERE digest IN ({marks(digests)})",
            digests)]

    async def with_manifests_among(self, names: Sequence[str]) -> set[str]:
        if not names:
            return set()
        return {row[0] for row in await self.db.fetch_all(
            f"SELECT DISTINCT repository FROM manifests WHERE repository IN ({marks(names)})",
            names)}

    async def linked_since(self, names: Sequence[str], since: float) -> set[str]:
        if not names:
            return set()
        return {row[0] for row in await self.db.fetch_all(
            f"SELECT repository FROM links_written WHERE at >= ? AND repository IN "
            f"({marks(names)})", (since, *names))}

    async def is_needed(self, repository: str, digest: str) -> bool:
        row = await self.db.fetch_one(
            "SELECT 1 FROM tags WHERE repository = ? AND digest = ? UNION ALL "
            "SELECT 1 FROM manifest_references WHERE repository = ? AND digest = ?",
            (repository, digest, repository, digest))
        return row is not None


async def get_meta(db: Statements, key: str) -> str | None:
    row = await db.fetch_one("SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row[0])


class SQLIndex(SummaryQueries, OutboxQueries, ABC):
    """Every read and single change of `Index`, over the connections a database gives."""

    locks: Locks

    @abstractmethod
    def reading(self) -> AbstractAsyncContextManager[Statements]:
        """A connection for reads outside a transaction (each sees the latest commit)."""

    @abstractmethod
    def writing(self) -> AbstractAsyncContextManager[SQLWrite]:
        """One write transaction (see IndexWrite)."""

    @abstractmethod
    async def version(self) -> Hashable:
        """Moves on every commit (see Index.version)."""

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.reading() as db:
            return await db.fetch_all(sql, params)

    async def _bulk(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read of the whole index (every tag, every manifest): hundreds of thousands of
        rows in a big registry."""
        return await self._all(sql, params)

    async def get_meta(self, key: str) -> str | None:
        async with self.reading() as db:
            return await get_meta(db, key)

    async def set_meta(self, key: str, value: str) -> None:
        async with self.writing() as db:
            await db.set_meta(key, value)

    async def is_complete(self) -> bool:
        # A migration that changes what a build writes deletes this mark.
        return await self.get_meta(BUILT_KEY) == "yes"

    async def mark_complete(self) -> None:
        await self.set_meta(BUILT_KEY, "yes")

    async def add_layer(self, repository: str, digest: str) -> None:
        async with self.writing() as db:
            await db.link_layer(repository, digest)

    async def remove_layer(self, repository: str, digest: str, events: Sequence[str] = ()
                           ) -> None:
        async with self.writing() as db:
            await db.add_events(events)
            await db.db.execute(
                "INSERT INTO gc_candidates (digest) VALUES (?) ON CONFLICT DO NOTHING",
                (digest,))
            await db.db.execute("DELETE FROM layers WHERE repository = ? AND digest = ?",
                                (repository, digest))

    async def remove_tag(self, repository: str, tag: str, events: Sequence[str] = ()
                         ) -> None:
        async with self.writing() as db:
            await db.add_events(events)
            await db.db.execute("DELETE FROM tags WHERE repository = ? AND tag = ?",
                                (repository, tag))

    async def remove_manifest(self, repository: str, digest: str, events: Sequence[str] = ()
                              ) -> None:
        async with self.writing() as db:
            await db.add_events(events)
            await db.forget_manifest(repository, digest)

    async def remove_repository(self, name: str, events: Sequence[str] = ()) -> None:
        async with self.writing() as db:
            await db.add_events(events)
            await db.delete_repository(name)

    async def repositories(self, last: str | None = None, limit: int | None = None
                           ) -> list[str]:
        query = "SELECT name FROM repositories WHERE name > ? ORDER BY name"
        params: tuple[Any, ...] = (last or "",)
        if limit is None:
            return [row[0] for row in await self._bulk(query, params)]
        return [row[0] for row in await self._all(query + " LIMIT ?", (*params, limit))]

    async def has_repository(self, name: str) -> bool:
        async with self.reading() as db:
            return await db.fetch_one("SELECT 1 FROM repositories WHERE name = ?",
                                      (name,)) is not None

    async def tags_of(self, repository: str, digest: str) -> list[str]:
        return [row[0] for row in await self._all(
            "SELECT tag FROM tags WHERE repository = ? AND digest = ? ORDER BY tag",
            (repository, digest))]

    async def tags(self, repository: str, last: str | None = None, limit: int | None = None
                   ) -> list[str]:
        query = "SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag"
        params: tuple[Any, ...] = (repository, last or "")
        if limit is not None:
            query, params = query + " LIMIT ?", (*params, limit)
        return [row[0] for row in await self._all(query, params)]

    async def tag_push_times(self, repository: str) -> list[tuple[str, str, float | None]]:
        """(tag, digest, when it was pushed through dockyard, or None) of every tag."""
        rows = await self._all("SELECT tag, digest, pushed FROM tags WHERE repository = ? "
                               "ORDER BY tag", (repository,))
        return [(row[0], row[1], None if row[2] is None else float(row[2])) for row in rows]

    async def referrers(self, repository: str, subject: str, artifact_type: str | None,
                        after: str | None = None) -> AsyncGenerator[ReferrerRow, None]:
        query = ("SELECT digest, media_type, size, artifact_type, annotations "
                 "FROM manifests WHERE repository = ? AND subject = ? AND digest > ?")
        if artifact_type is not None:
            query += " AND artifact_type = ?"
        query += f" ORDER BY digest LIMIT {REFERRER_BATCH}"
        last = after or ""
        while True:
            params = (repository, subject, last) + (
                (artifact_type,) if artifact_type is not None else ())
            rows = await self._all(query, params)
            for digest, media_type, size, artifact, annotated in rows:
                yield ReferrerRow(digest, media_type, int(size), artifact, annotated)
            if len(rows) < REFERRER_BATCH:
                return
            last = rows[-1][0]

    async def snapshots(self) -> dict[str, RepositorySnapshot]:
        """What the index holds for every repository, read in four queries."""
        tags: dict[str, dict[str, str]] = {}
        manifests: dict[str, set[str]] = {}
        layers: dict[str, set[str]] = {}
        for name, tag, digest in await self._bulk("SELECT repository, tag, digest FROM tags"):
            tags.setdefault(name, {})[tag] = digest
        for name, digest in await self._bulk("SELECT repository, digest FROM manifests"):
            manifests.setdefault(name, set()).add(digest)
        for name, digest in await self._bulk("SELECT repository, digest FROM layers"):
            layers.setdefault(name, set()).add(digest)
        names = [row[0] for row in await self._bulk("SELECT name FROM repositories")]
        return {name: RepositorySnapshot(tags.get(name, {}),
                                         frozenset(manifests.get(name, ())),
                                         frozenset(layers.get(name, ())))
                for name in names}

    async def repositories_without_manifests(self) -> list[str]:
        return [row[0] for row in await self._bulk(
            "SELECT name FROM repositories WHERE NOT EXISTS "
            "(SELECT 1 FROM manifests WHERE repository = name) ORDER BY name")]

    async def referenced_digests(self) -> set[str]:
        return {row[0] for row in await self._bulk(
            "SELECT digest FROM manifest_references UNION SELECT digest FROM manifests")}

    async def all_manifests(self) -> list[tuple[str, str, str | None]]:
        return [(row[0], row[1], row[2]) for row in await self._bulk(
            "SELECT repository, digest, subject FROM manifests")]

    async def all_tagged(self) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in await self._bulk(
            "SELECT repository, digest FROM tags")]

    async def references_of(self, repository: str, digest: str) -> list[str]:
        return [row[0] for row in await self._all(
            "SELECT digest FROM manifest_references WHERE repository = ? AND manifest = ?",
            (repository, digest))]

    async def tag_counts(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in await self._bulk(
            "SELECT repository, count(*) FROM tags GROUP BY repository")}

    async def manifest_entries(self) -> dict[tuple[str, str], tuple[int, str | None]]:
        return {(row[0], row[1]): (int(row[2]), row[3]) for row in await self._bulk(
            "SELECT repository, digest, size, subject FROM manifests")}

    async def all_references(self) -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for repository, manifest, digest in await self._bulk(
                "SELECT repository, manifest, digest FROM manifest_references"):
            found.setdefault((repository, manifest), []).append(digest)
        return found

    async def gc_candidates(self) -> list[str]:
        return [row[0] for row in await self._bulk(
            "SELECT digest FROM gc_candidates ORDER BY digest")]

    async def all_blobs_created(self) -> dict[str, float]:
        return {row[0]: float(row[1]) for row in await self._bulk(
            "SELECT digest, created FROM blobs")}
