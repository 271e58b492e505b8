"""The embedded index: one SQLite file beside the store, shared by every worker (WAL mode)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SCHEMA_VERSION = "1"

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
"""


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RepositorySnapshot:
    """What the index (or the store) holds for one repository, for comparing the two."""

    tags: dict[str, str]
    manifests: frozenset[str]
    layers: frozenset[str]


class SQLiteIndex:
    def __init__(self, path: str) -> None:
        self.path = path
        # Autocommit mode: each statement commits, and `transaction` groups several.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # State of the index as a whole.
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def is_complete(self) -> bool:
        """Whether a full build finished with the current schema."""
        return self.get_meta("schema_version") == SCHEMA_VERSION and \
            self.get_meta("built") == "yes"

    def mark_complete(self) -> None:
        self.set_meta("schema_version", SCHEMA_VERSION)
        self.set_meta("built", "yes")

    # Writes, each made after the store was changed.
    def add_repository(self, name: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?)", (name,))

    def add_layer(self, repository: str, digest: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?)", (repository,))
            db.execute("INSERT OR IGNORE INTO layers (repository, digest) VALUES (?, ?)",
                       (repository, digest))

    def remove_layer(self, repository: str, digest: str) -> None:
        self.db.execute("DELETE FROM layers WHERE repository = ? AND digest = ?",
                        (repository, digest))

    def add_manifest(self, repository: str, record: ManifestRecord, tag: str | None) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?)", (repository,))
            self._insert_manifest(db, repository, record)
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

    def remove_tag(self, repository: str, tag: str) -> None:
        self.db.execute("DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))

    def remove_manifest(self, repository: str, digest: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE repository = ? AND digest = ?",
                       (repository, digest))
            db.execute("DELETE FROM manifests WHERE repository = ? AND digest = ?",
                       (repository, digest))

    def replace_repository(self, name: str, tags: dict[str, str],
                           manifests: Iterable[ManifestRecord], layers: Iterable[str]) -> None:
        """Make the index's view of one repository exactly this (rebuild, repair)."""
        with self.transaction() as db:
            self._delete_repository(db, name)
            db.execute("INSERT INTO repositories (name) VALUES (?)", (name,))
            db.executemany("INSERT INTO tags (repository, tag, digest) VALUES (?, ?, ?)",
                           [(name, tag, digest) for tag, digest in tags.items()])
            for record in manifests:
                self._insert_manifest(db, name, record)
            db.executemany("INSERT INTO layers (repository, digest) VALUES (?, ?)",
                           [(name, digest) for digest in layers])

    def remove_repository(self, name: str) -> None:
        with self.transaction() as db:
            self._delete_repository(db, name)

    @staticmethod
    def _delete_repository(db: sqlite3.Connection, name: str) -> None:
        for table in ("tags", "manifests", "layers"):
            db.execute(f"DELETE FROM {table} WHERE repository = ?", (name,))
        db.execute("DELETE FROM repositories WHERE name = ?", (name,))

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

    def referrers(self, repository: str, subject: str, artifact_type: str | None
                  ) -> list[ManifestRecord]:
        query = ("SELECT digest, media_type, size, subject, artifact_type, annotations "
                 "FROM manifests WHERE repository = ? AND subject = ?")
        params: tuple[str, ...] = (repository, subject)
        if artifact_type is not None:
            query += " AND artifact_type = ?"
            params += (artifact_type,)
        return [
            ManifestRecord(digest, media_type, size, subject_, artifact,
                           json.loads(annotations) if annotations else None)
            for digest, media_type, size, subject_, artifact, annotations
            in self.db.execute(query + " ORDER BY digest", params)
        ]

    def snapshot(self, repository: str) -> RepositorySnapshot:
        tags = dict(self.db.execute("SELECT tag, digest FROM tags WHERE repository = ?",
                                    (repository,)).fetchall())
        manifests = frozenset(row[0] for row in self.db.execute(
            "SELECT digest FROM manifests WHERE repository = ?", (repository,)))
        layers = frozenset(row[0] for row in self.db.execute(
            "SELECT digest FROM layers WHERE repository = ?", (repository,)))
        return RepositorySnapshot(tags, manifests, layers)


INDEX_DIR = "dockyard"
INDEX_FILE = "index.sqlite"


def index_path(root_directory: str) -> str:
    """Beside distribution's `docker/` tree, where distribution never looks."""
    return os.path.join(root_directory, INDEX_DIR, INDEX_FILE)


def open_index(root_directory: str | None) -> SQLiteIndex:
    if root_directory is None:
        return SQLiteIndex(":memory:")
    path = index_path(root_directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return SQLiteIndex(path)
