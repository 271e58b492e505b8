"""dockyard's metadata index in PostgreSQL (`--index postgres`): one server for the run
(a private one started here, or the one `DOCKYARD_TEST_POSTGRES_DSN` names), one database
per dockyard store, created and migrated before that dockyard starts."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .common import REPO_ROOT, BenchError, log

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

INDEXES = ("sqlite", "postgres")


class IndexDatabases:
    """Hands out index databases: `dsn()` is None with the SQLite index."""

    def __init__(self, server: PostgresServer | None) -> None:
        self.server = server

    @property
    def kind(self) -> str:
        return "postgres" if self.server is not None else "sqlite"

    def dsn(self, name: str) -> str | None:
        """A new database for one store (several instances on one store share it)."""
        if self.server is None:
            return None
        label = "".join(c if c.isalnum() else "_" for c in name.lower())[:24]
        return self.server.index_database(f"{label}_{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def index_databases(kind: str) -> Iterator[IndexDatabases]:
    """The run's PostgreSQL server for `kind` "postgres", stopped (or, external, its
    databases dropped) at the end; nothing for "sqlite"."""
    if kind != "postgres":
        yield IndexDatabases(None)
        return
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise BenchError("--index postgres needs psycopg (dockyard's postgres extra)") from exc
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.postgres import EXTERNAL_ENV, find_pg_bindir, postgres_server_for_run

    if not os.environ.get(EXTERNAL_ENV) and find_pg_bindir() is None:
        raise BenchError("--index postgres needs PostgreSQL's initdb, pg_ctl and postgres "
                         f"(or {EXTERNAL_ENV} naming a server)")
    with postgres_server_for_run() as server:
        where = "external" if os.environ.get(EXTERNAL_ENV) else "private"
        log(f"PostgreSQL ({where}) for dockyard's index on 127.0.0.1:{server.port}")
        try:
            yield IndexDatabases(server)
        finally:
            if where == "private":
                with contextlib.suppress(Exception):
                    server.drop_created_databases()
