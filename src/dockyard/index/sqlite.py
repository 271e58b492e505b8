"""The embedded index: one SQLite file beside the store, shared by every worker (WAL mode)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dockyard.index.locks import StoreLocks

SCHEMA_VERSION = "2"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
    repository TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
    size INTEGER NOT NULL, subject TEXT, artifact_type TEXT, annotations TEXT,
    PRIMARY KEY (repository, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repository, subject)
    WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS layers (
    repository TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS layers_by_digest ON layers (digest);
-- What each manifest needs: its config and layers, or an index's children.
CREATE TABLE IF NOT EXISTS manifest_references (
    repository TEXT NOT NULL, manifest TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, manifest, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS references_by_digest ON manifest_references (digest);
-- Blobs committed through dockyard, recorded before the upload's 201 (garbage collection
-- keeps fresh ones for its grace period).
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID;
-- When a layer link was last written in each repository (a rewrite of a link the
-- repository already had included): garbage collection, deciding from a listing made
-- earlier that a repository is empty, keeps it if a push linked something since.
CREATE TABLE IF NOT EXISTS links_written (
    repository TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    references: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class RepositorySnapshot:
    """What the index (or the store) holds for one repository, for comparing the two."""

    tags: dict[str, str]
    manifests: frozenset[str]
    layers: frozenset[str]


class SQLiteIndex:
    def __init__(self, path: str) -> None:
        self.path = path
        # Autocommit mode: reads see the latest commit; `writing` groups writes.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._lock = asyncio.Lock()
        self._commits = 0
        in_memory = path == ":memory:"
        self.locks = StoreLocks(
            None if in_memory else os.path.join(os.path.dirname(path), LOCK_FILE))

    def close(self) -> None:
        self.db.close()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[sqlite3.Connection]:
        """One write transaction, exclusive across coroutines and processes. Work done
        inside (storage changes included) is atomic with respect to every other writer:
        this is how a manifest's blob check and garbage collection's delete exclude
        each other."""
        async with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            self._commits += 1

    # State of the index as a whole.
    def version(self) -> tuple[int, int]:
        """Moves on every commit: SQLite's data_version counts other connections' commits
        (other workers, a garbage collector), our own counter this connection's."""
        row = self.db.execute("PRAGMA data_version").fetchone()
        return int(row[0]), self._commits

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.writing() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def is_complete(self) -> bool:
        """Whether a full build finished with the current schema."""
        return self.get_meta("schema_version") == SCHEMA_VERSION and \
            self.get_meta("built") == "yes"

    async def mark_complete(self) -> None:
        async with self.writing() as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("schema_version", SCHEMA_VERSION), ("built", "yes")])

    # Writes, each made after the store was changed.
    async def add_layer(self, repository: str, digest: str) -> None:
        async with self.writing() as db:
            db.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?)", (repository,))
            db.execute("INSERT OR IGNORE INTO layers (repository, digest) VALUES (?, ?)",
                       (repository, digest))
            self.record_link_written(db, repository)

    async def remove_layer(self, repository: str, digest: str) -> None:
        async with self.writing() as db:
            db.execute("DELETE FROM layers WHERE repository = ? AND digest = ?",
                       (repository, digest))

    @staticmethod
    def record_blob(db: sqlite3.Connection, digest: str, size: int) -> None:
        """Inside `writing`: a blob has just been made visible."""
        db.execute("INSERT OR REPLACE INTO blobs (digest, size, created) VALUES (?, ?, ?)",
                   (digest, size, time.time()))

    @staticmethod
    def record_manifest(db: sqlite3.Connection, repository: str, record: ManifestRecord,
                        tag: str | None) -> None:
        """Inside `writing`: a manifest, the blobs it needs, and the tag naming it."""
        db.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?)", (repository,))
        SQLiteIndex._insert_manifest(db, repository, record)
        if tag is not None:
            db.execute("INSERT OR REPLACE INTO tags (repository, tag, digest) "
                       "VALUES (?, ?, ?)", (repository, tag, record.digest))

    @staticmethod
    def _insert_manifest(db: sqlite3.Connection, repository: str, record: ManifestRecord
                         ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO manifests (repository, digest, media_type, size, subject,"
            " artifact_type, annotations) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (repository, record.digest, record.media_type, record.size, record.subject,
             record.artifact_type,
             json.dumps(record.annotations) if record.annotations else None),
        )
        db.executemany(
            "INSERT OR IGNORE INTO manifest_references (repository, manifest, digest) "
            "VALUES (?, ?, ?)",
            [(repository, record.digest, digest) for digest in record.references])

    async def remove_tag(self, repository: str, tag: str) -> None:
        async with self.writing() as db:
            db.execute("DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))

    async def remove_manifest(self, repository: str, digest: str) -> None:
        async with self.writing() as db:
            self.forget_manifest(db, repository, digest)

    @staticmethod
    def forget_manifest(db: sqlite3.Connection, repository: str, digest: str) -> None:
        db.execute("DELETE FROM tags WHERE repository = ? AND digest = ?", (repository, digest))
        db.execute("DELETE FROM manifests WHERE repository = ? AND digest = ?",
                   (repository, digest))
        db.execute("DELETE FROM manifest_references WHERE repository = ? AND manifest = ?",
                   (repository, digest))

    @staticmethod
    def replace_repository_within(db: sqlite3.Connection, item: RepositoryContents) -> None:
        """Inside `writing`: make the index's view of a repository exactly `item`."""
        SQLiteIndex.delete_repository_within(db, item.name)
        db.execute("INSERT INTO repositories (name) VALUES (?)", (item.name,))
        db.executemany("INSERT INTO tags (repository, tag, digest) VALUES (?, ?, ?)",
                       [(item.name, tag, digest) for tag, digest in item.tags.items()])
        for record in item.manifests:
            SQLiteIndex._insert_manifest(db, item.name, record)
        db.executemany("INSERT INTO layers (repository, digest) VALUES (?, ?)",
                       [(item.name, digest) for digest in item.layers])

    async def remove_repository(self, name: str) -> None:
        async with self.writing() as db:
            self.delete_repository_within(db, name)

    @staticmethod
    def delete_repository_within(db: sqlite3.Connection, name: str) -> None:
        for table in ("tags", "manifests", "layers", "manifest_references"):
            db.execute(f"DELETE FROM {table} WHERE repository = ?", (name,))
        db.execute("DELETE FROM repositories WHERE name = ?", (name,))

    # What garbage collection asks.
    # Each asks about a batch of digests at once (a few queries per batch, not per blob).
    @staticmethod
    def referenced_among(db: sqlite3.Connection, digests: Sequence[str]) -> set[str]:
        """Which of `digests` a manifest is, or needs."""
        marks = _marks(digests)
        return {row[0] for row in db.execute(
            f"SELECT digest FROM manifest_references WHERE digest IN ({marks}) UNION "
            f"SELECT digest FROM manifests WHERE digest IN ({marks})", (*digests, *digests))}

    @staticmethod
    def blobs_created(db: sqlite3.Connection, digests: Sequence[str]
                      ) -> dict[str, tuple[int, float]]:
        """(size, created) of those of `digests` committed through dockyard."""
        return {row[0]: (int(row[1]), float(row[2])) for row in db.execute(
            f"SELECT digest, size, created FROM blobs WHERE digest IN ({_marks(digests)})",
            tuple(digests))}

    @staticmethod
    def links_among(db: sqlite3.Connection, digests: Sequence[str]) -> list[tuple[str, str]]:
        """(repository, digest) of every repository's layer link to one of `digests`."""
        return [(row[0], row[1]) for row in db.execute(
            f"SELECT repository, digest FROM layers WHERE digest IN ({_marks(digests)})",
            tuple(digests))]

    @staticmethod
    def forget_blobs(db: sqlite3.Connection, digests: Sequence[str]) -> None:
        db.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in digests])
        db.executemany("DELETE FROM layers WHERE digest = ?", [(d,) for d in digests])

    def repositories_without_manifests(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT name FROM repositories WHERE NOT EXISTS "
            "(SELECT 1 FROM manifests WHERE repository = name) ORDER BY name")]

    @staticmethod
    def with_manifests_among(db: sqlite3.Connection, names: Sequence[str]) -> set[str]:
        return {row[0] for row in db.execute(
            f"SELECT DISTINCT repository FROM manifests WHERE repository IN ({_marks(names)})",
            tuple(names))}

    @staticmethod
    def record_link_written(db: sqlite3.Connection, repository: str) -> None:
        """Inside `writing`: a layer link of `repository` has just been written."""
        db.execute("INSERT OR REPLACE INTO links_written (repository, at) VALUES (?, ?)",
                   (repository, time.time()))

    @staticmethod
    def linked_since(db: sqlite3.Connection, names: Sequence[str], since: float) -> set[str]:
        """Those of `names` a layer link was written in at or after `since`."""
        return {row[0] for row in db.execute(
            f"SELECT repository FROM links_written WHERE at >= ? AND repository IN "
            f"({_marks(names)})", (since, *names))}

    @staticmethod
    def forget_repositories(db: sqlite3.Connection, names: Sequence[str]) -> None:
        rows = [(name,) for name in names]
        db.executemany("DELETE FROM links_written WHERE repository = ?", rows)
        for table in ("tags", "layers", "manifest_references"):
            db.executemany(f"DELETE FROM {table} WHERE repository = ?", rows)
        db.executemany("DELETE FROM repositories WHERE name = ?", rows)

    def referenced_digests(self) -> set[str]:
        """Every digest some manifest is or needs (a snapshot; re-check when deleting)."""
        return {row[0] for row in self.db.execute(
            "SELECT digest FROM manifest_references UNION SELECT digest FROM manifests")}

    def all_manifests(self) -> list[tuple[str, str, str | None]]:
        """(repository, digest, subject) of every manifest."""
        return [(row[0], row[1], row[2]) for row in self.db.execute(
            "SELECT repository, digest, subject FROM manifests")]

    def all_tagged(self) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self.db.execute(
            "SELECT repository, digest FROM tags")]

    def references_of(self, repository: str, digest: str) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT digest FROM manifest_references WHERE repository = ? AND manifest = ?",
            (repository, digest))]

    # Whole-store reads for disk usage: a few queries, whatever the number of repositories.
    def tag_counts(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in self.db.execute(
            "SELECT repository, count(*) FROM tags GROUP BY repository")}

    def manifest_entries(self) -> dict[tuple[str, str], tuple[int, str | None]]:
        """(repository, digest) of every manifest -> (size, subject)."""
        return {(row[0], row[1]): (int(row[2]), row[3]) for row in self.db.execute(
            "SELECT repository, digest, size, subject FROM manifests")}

    def all_references(self) -> dict[tuple[str, str], list[str]]:
        """(repository, manifest) -> what it needs (config, layers, an index's children)."""
        found: dict[tuple[str, str], list[str]] = {}
        for repository, manifest, digest in self.db.execute(
                "SELECT repository, manifest, digest FROM manifest_references"):
            found.setdefault((repository, manifest), []).append(digest)
        return found

    def all_blobs_created(self) -> dict[str, float]:
        """When each blob committed through dockyard was committed."""
        return {row[0]: float(row[1]) for row in self.db.execute(
            "SELECT digest, created FROM blobs")}

    # Reads.
    def repositories(self, last: str | None = None, limit: int | None = None) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?",
            (last or "", -1 if limit is None else limit))]

    def has_repository(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM repositories WHERE name = ?",
                               (name,)).fetchone() is not None

    def tags(self, repository: str, last: str | None = None, limit: int | None = None
             ) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag LIMIT ?",
            (repository, last or "", -1 if limit is None else limit))]

    def referrers(self, repository: str, subject: str, artifact_type: str | None,
                  after: str | None = None) -> Generator[ReferrerRow, None, None]:
        """Manifests whose subject is `subject`, in digest order after `after`, read row by
        row as the caller asks for them: one that stops early never loads the rest (some
        carry megabytes of annotations). Close the generator when done with it."""
        query = ("SELECT digest, media_type, size, artifact_type, annotations "
                 "FROM manifests WHERE repository = ? AND subject = ? AND digest > ?")
        params: tuple[str, ...] = (repository, subject, after or "")
        if artifact_type is not None:
            query += " AND artifact_type = ?"
            params += (artifact_type,)
        cursor = self.db.execute(query + " ORDER BY digest", params)
        try:
            for digest, media_type, size, artifact, annotations in cursor:
                yield ReferrerRow(digest, media_type, size, artifact, annotations)
        finally:
            cursor.close()

    def snapshots(self) -> dict[str, RepositorySnapshot]:
        """What the index holds for every repository, read in three queries."""
        tags: dict[str, dict[str, str]] = {}
        manifests: dict[str, set[str]] = {}
        layers: dict[str, set[str]] = {}
        for name, tag, digest in self.db.execute("SELECT repository, tag, digest FROM tags"):
            tags.setdefault(name, {})[tag] = digest
        for name, digest in self.db.execute("SELECT repository, digest FROM manifests"):
            manifests.setdefault(name, set()).add(digest)
        for name, digest in self.db.execute("SELECT repository, digest FROM layers"):
            layers.setdefault(name, set()).add(digest)
        return {name: RepositorySnapshot(tags.get(name, {}),
                                         frozenset(manifests.get(name, ())),
                                         frozenset(layers.get(name, ())))
                for name in self.repositories()}


INDEX_DIR = "dockyard"
INDEX_FILE = "index.sqlite"
LOCK_FILE = "store.lock"


def _marks(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


def index_path(root_directory: str) -> str:
    """Beside distribution's `docker/` tree, where distribution never looks."""
    return os.path.join(root_directory, INDEX_DIR, INDEX_FILE)


def open_index(root_directory: str | None) -> SQLiteIndex:
    if root_directory is None:
        return SQLiteIndex(":memory:")
    path = index_path(root_directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return SQLiteIndex(path)
