"""Slowing down password guessing: too many failed logins get 429s.

Every login attempt is recorded *before* its password is checked, in the same transaction
that looks at the count, and forgotten again only when it succeeds. So parallel guesses,
on any number of connections and workers, get no more checks than the limit: a check in
flight counts as a failure until it is known not to be one.

Attempts are counted per client address and account, so one guesser does not lock every
user behind the same proxy out, and per client address over all accounts, with a higher
limit, so trying a few passwords on many accounts is slowed down too. Here they live in a
small SQLite file beside the store, so every worker process sees the same count (an
in-memory database for a store without a directory); registries sharing a PostgreSQL
database count them there instead, together (`throttle_postgres`).

A client that reaches a limit is logged once per block (account, client, failures), not
once per refused request: the first refusal records the block, in the same transaction,
until the failures that caused it expire."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from typing import Protocol

WINDOW = 60.0
MAX_FAILURES = 10  # per client and account
MAX_CLIENT_FAILURES = 100  # per client, all accounts together
ACCOUNT_CHARS = 256  # of a user name, as the key it is counted under

log = logging.getLogger("dockyard.auth")


class LoginThrottle(Protocol):
    """Where failed logins are counted, as the authenticators use it."""

    window: float  # seconds a failure counts for

    async def begin(self, client: str, account: str) -> int | None:
        """Count an attempt to log in to `account` from `client` before checking it: its id,
        or None when the client has used up its failures and must not be checked."""

    async def forget(self, attempt: int) -> None:
        """An attempt that turned out not to be a failure (the password was right)."""

    async def aclose(self) -> None:
        """Give back what the throttle holds open, in the event loop that used it."""


def log_block(client: str, account: str, failures: int, until: float, limit: str,
              window: float) -> None:
    """The one log line of a block (its first refusal)."""
    log.warning("login throttled: too many failed logins", extra={"fields": {
        "account": account, "client": client, "failures": failures,
        "limit": limit, "window": f"{window:g}s",
        "until": datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}})


class SQLiteLoginThrottle:
    """Counts in a SQLite file, shared by the worker processes of one host. Its calls do
    not suspend: a transaction on a local file takes a fraction of a millisecond."""

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
        # kind: "account" (the client's failures on that account) or "client" (its failures
        # on all accounts, recorded with account "").
        self.db.execute("CREATE TABLE IF NOT EXISTS login_blocks (client TEXT NOT NULL, "
                        "kind TEXT NOT NULL, account TEXT NOT NULL, until REAL NOT NULL)")

    def close(self) -> None:
        self.db.close()

    async def aclose(self) -> None:
        self.close()

    async def begin(self, client: str, account: str) -> int | None:
        return self.begin_now(client, account)

    async def forget(self, attempt: int) -> None:
        self.db.execute("DELETE FROM login_attempts WHERE rowid = ?", (attempt,))

    def begin_now(self, client: str, account: str) -> int | None:
        """`begin`, without suspending (see LoginThrottle.begin)."""
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
            blocked = None
            if for_account >= self.max_failures or for_client >= self.max_client_failures:
                attempt = None
                blocked = self._record_block(client, account, for_account, for_client, now)
            else:
                attempt = self.db.execute(
                    "INSERT INTO login_attempts (client, account, at) VALUES (?, ?, ?)",
                    (client, account, now)).lastrowid
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if blocked is not None:
            failures, until, limit = blocked
            log_block(client, account, failures, until, limit, self.window)
        return attempt

    def _record_block(self, client: str, account: str, for_account: int, for_client: int,
                      now: float) -> tuple[int, float, str] | None:
        """Note that `client` is blocked (for `account`, or for all accounts): the failures,
        when the block lifts and which limit it is, if this is the block's first refusal;
        None if it was noted already. Runs inside begin's transaction."""
        if for_account >= self.max_failures:
            limit, key, failures = "account", account, for_account
            (oldest,), = self.db.execute("SELECT MIN(at) FROM login_attempts "
                                         "WHERE client = ? AND account = ?", (client, account))
        else:
            limit, key, failures = "client", "", for_client
            (oldest,), = self.db.execute("SELECT MIN(at) FROM login_attempts WHERE client = ?",
                                         (client,))
        self.db.execute("DELETE FROM login_blocks WHERE until <= ?", (now,))
        known = self.db.execute("SELECT 1 FROM login_blocks WHERE client = ? AND kind = ? "
                                "AND account = ?", (client, limit, key)).fetchone()
        if known is not None:
            return None
        # It lifts when the oldest failure counted leaves the window.
        until = (oldest if oldest is not None else now) + self.window
        self.db.execute("INSERT INTO login_blocks (client, kind, account, until) "
                        "VALUES (?, ?, ?, ?)", (client, limit, key, until))
        return failures, until, limit
