"""The embedded index: one SQLite file beside the store, shared by every worker (WAL mode)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from dockyard.index import schema
from dockyard.index.locks import StoreLocks
from dockyard.index.sql import BUILT_KEY, Row, SQLIndex, SQLWrite
from dockyard.index.summaries import REACH_SQLITE

INDEX_DIR = "dockyard"
INDEX_FILE = "index.sqlite"
LOCK_FILE = "store.lock"


class SQLiteStatements:
    """The `Statements` of one sqlite3 connection: each call returns without suspending."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.execute(sql, params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.db.execute(sql, params).fetchall()

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.db.execute(sql, params).fetchone()
        return row


class SQLiteIndex(SQLIndex):
    if sqlite3.sqlite_version_info >= (3, 34):  # several recursive steps in one CTE
        reach_query = REACH_SQLITE
    def __init__(self, path: str) -> None:
        self.path = path
        # Autocommit mode: reads see the latest commit; `writing` groups writes.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._statements = SQLiteStatements(self.db)
        self._lock = asyncio.Lock()
        self._commits = 0
        in_memory = path == ":memory:"
        self.locks = StoreLocks(
            None if in_memory else os.path.join(os.path.dirname(path), LOCK_FILE))

    def _migrate(self) -> None:
        """Bring the file to the schema this dockyard knows (SchemaMismatch if it is
        newer): the embedded index belongs to its store alone, so it migrates itself."""
        self.db.execute(schema.META_TABLE)
        self.db.execute("BEGIN IMMEDIATE")  # one worker migrates; the others then see it
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?",
                                  (schema.VERSION_KEY,)).fetchone()
            for migration in schema.pending(int(row[0]) if row else 0):
                for statement in migration.sqlite.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                if migration.rebuild:
                    self.db.execute("DELETE FROM meta WHERE key = ?", (BUILT_KEY,))
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                (schema.VERSION_KEY, str(migration.version)))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    async def aclose(self) -> None:
        """Nothing is bound to an event loop."""

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SQLiteStatements]:
        yield self._statements

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[SQLWrite]:
        """One write transaction, exclusive across coroutines and processes (BEGIN
        IMMEDIATE takes SQLite's write lock at once)."""
        async with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield SQLWrite(self._statements)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            self._commits += 1

    async def _bulk(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Read in a thread, on a connection of its own: at 100,000 repositories a whole
        table takes seconds, which the worker's event loop must not wait for."""
        if self.path == ":memory:":
            return await self._all(sql, params)
        return await asyncio.to_thread(self._read_apart, sql, params)

    def _read_apart(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    async def version(self) -> tuple[int, int]:
        """SQLite's data_version counts other connections' commits (other workers, a
        garbage collector), our own counter this connection's."""
        row = self.db.execute("PRAGMA data_version").fetchone()
        return int(row[0]), self._commits


def index_path(root_directory: str) -> str:
    """Beside distribution's `docker/` tree, where distribution never looks."""
    return os.path.join(root_directory, INDEX_DIR, INDEX_FILE)


def open_index(root_directory: str | None) -> SQLiteIndex:
    if root_directory is None:
        return SQLiteIndex(":memory:")
    path = index_path(root_directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return SQLiteIndex(path)
