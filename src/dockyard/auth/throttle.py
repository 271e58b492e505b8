"""Slowing down password guessing: too many failed logins from one client get 429s.

Failures are counted in a small SQLite file beside the store, so every worker process sees
the same count (an in-memory database for a store without a directory)."""

from __future__ import annotations

import sqlite3
import time

WINDOW = 60.0
MAX_FAILURES = 10


class LoginThrottle:
    def __init__(self, path: str = ":memory:", max_failures: int = MAX_FAILURES,
                 window: float = WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS login_failures (client TEXT NOT NULL, "
                        "at REAL NOT NULL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS failures_by_client "
                        "ON login_failures (client, at)")

    def close(self) -> None:
        self.db.close()

    def blocked(self, client: str) -> bool:
        row = self.db.execute("SELECT COUNT(*) FROM login_failures WHERE client = ? AND at > ?",
                              (client, time.time() - self.window)).fetchone()
        return int(row[0]) >= self.max_failures

    def failed(self, client: str) -> None:
        now = time.time()
        self.db.execute("INSERT INTO login_failures (client, at) VALUES (?, ?)", (client, now))
        self.db.execute("DELETE FROM login_failures WHERE at < ?", (now - self.window,))
