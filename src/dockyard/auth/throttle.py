"""Slowing down password guessing: too many failed logins get 429s.

Every login attempt is recorded *before* its password is checked, in the same transaction
that looks at the count, and forgotten again only when it succeeds. So parallel guesses,
on any number of connections and workers, get no more checks than the limit: a check in
flight counts as a failure until it is known not to be one.

Attempts are counted per client address and account, so one guesser does not lock every
user behind the same proxy out, and per client address over all accounts, with a higher
limit, so trying a few passwords on many accounts is slowed down too. They live in a small
SQLite file beside the store, so every worker process sees the same count (an in-memory
database for a store without a directory)."""

from __future__ import annotations

import sqlite3
import time

WINDOW = 60.0
MAX_FAILURES = 10  # per client and account
MAX_CLIENT_FAILURES = 100  # per client, all accounts together
ACCOUNT_CHARS = 256  # of a user name, as the key it is counted under


class LoginThrottle:
    def __init__(self, path: str = ":memory:", max_failures: int = MAX_FAILURES,
                 max_client_failures: int = MAX_CLIENT_FAILURES, window: float = WINDOW
                 ) -> None:
        self.max_failures = max_failures
        self.max_client_failures = max_client_failures
        self.window = window
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("DROP TABLE IF EXISTS login_failures")  # before attempts were counted
        self.db.execute("CREATE TABLE IF NOT EXISTS login_attempts (client TEXT NOT NULL, "
                        "account TEXT NOT NULL, at REAL NOT NULL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS attempts_by_account "
                        "ON login_attempts (client, account, at)")

    def close(self) -> None:
        self.db.close()

    def begin(self, client: str, account: str) -> int | None:
        """Count an attempt to log in to `account` from `client` before checking it: its id,
        or None when the client has used up its failures and must not be checked."""
        now = time.time()
        account = account[:ACCOUNT_CHARS]
        # IMMEDIATE takes the write lock first, so no other worker counts in between.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM login_attempts WHERE at <= ?", (now - self.window,))
            (for_account,), = self.db.execute(
                "SELECT COUNT(*) FROM login_attempts WHERE client = ? AND account = ?",
                (client, account))
            (for_client,), = self.db.execute(
                "SELECT COUNT(*) FROM login_attempts WHERE client = ?", (client,))
            if for_account >= self.max_failures or for_client >= self.max_client_failures:
                attempt = None
            else:
                attempt = self.db.execute(
                    "INSERT INTO login_attempts (client, account, at) VALUES (?, ?, ?)",
                    (client, account, now)).lastrowid
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return attempt

    def forget(self, attempt: int) -> None:
        """An attempt that turned out not to be a failure (the password was right)."""
        self.db.execute("DELETE FROM login_attempts WHERE rowid = ?", (attempt,))
