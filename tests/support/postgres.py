"""A private PostgreSQL server for the tests, or an external one.

- private: ``initdb`` a throwaway cluster in a temporary directory and start it with
  ``pg_ctl`` on a free loopback port (trust authentication, no fsync), once per test
  session and per xdist worker (each worker runs its own server, so nothing is shared
  between processes); stopped (``-m immediate``) and removed at the end of the session.
  The binaries are taken from ``PATH``, else from the highest version under
  ``/usr/lib/postgresql/<version>/bin`` (where Debian's ``postgresql`` package puts them).
  ``initdb`` refuses to run as root: as root the server runs as the ``postgres`` user, in
  directories that user owns.
- external: set ``DOCKYARD_TEST_POSTGRES_DSN`` (a ``postgresql://`` URL or a conninfo
  string) to a role allowed to create databases; nothing is started then, and the
  databases the tests create there are dropped at the end of the session.

The ``postgres_server`` fixture (session) gives a ``PostgresServer``; ``postgres_dsn``
gives each test the DSN of a fresh, empty database of its own.  With ``CI`` set, missing
PostgreSQL binaries (or psycopg) fail the tests instead of skipping them.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.server import IN_CI, free_port

EXTERNAL_ENV = "DOCKYARD_TEST_POSTGRES_DSN"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "dockyard"
SERVER_USER = "postgres"  # the OS user the server runs as when the tests run as root
DATABASE_PREFIX = "dockyard_test_"


def _missing(what: str) -> None:
    """Skip locally, fail in CI: the convention of every external tool of the tests."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not installed")
    pytest.skip(f"{what} is not installed")


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's layout."""
    found = [shutil.which(tool) for tool in PG_TOOLS]
    if all(found):
        # Resolve symlinks so that all three come from one installation.
        directories = {Path(path).resolve().parent for path in found if path}
        if len(directories) == 1:
            return directories.pop()
        return Path(found[0] or "").parent
    versions: list[tuple[tuple[int, ...], Path]] = []
    if DEBIAN_PG_ROOT.is_dir():
        for candidate in DEBIAN_PG_ROOT.iterdir():
            if not re.fullmatch(r"\d+(\.\d+)*", candidate.name):
                continue
            bindir = candidate / "bin"
            if all(os.access(bindir / tool, os.X_OK) for tool in PG_TOOLS):
                versions.append((tuple(int(part) for part in candidate.name.split(".")), bindir))
    if not versions:
        return None
    return max(versions)[1]


def require_pg_bindir() -> Path:
    bindir = find_pg_bindir()
    if bindir is None:
        _missing(f"PostgreSQL ({', '.join(PG_TOOLS)} on PATH or under {DEBIAN_PG_ROOT}/*/bin)")
        raise AssertionError("unreachable")  # pytest.skip/fail raise
    return bindir


def require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg (psycopg[binary] >= 3.2)")


def with_database(dsn: str, dbname: str) -> str:
    """The same connection parameters as ``dsn``, for another database."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on.

    ``admin_dsn`` connects as a role allowed to create databases; ``data_dir`` and
    ``os_user`` are those of a private server (``None`` for an external one).
    """

    host: str
    port: int
    user: str
    admin_dsn: str
    data_dir: Path | None = None
    os_user: str | None = None
    created: list[str] = field(default_factory=list)
    # A private server's `pg_ctl -D DATA` (as its user), start options and log.
    control: list[str] | None = None
    start_options: str = ""
    log: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def new_database(self) -> str:
        """Create a fresh, empty database with a unique name and return its DSN."""
        import psycopg
        from psycopg import sql

        name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with self._lock:
            self.created.append(name)
        return with_database(self.admin_dsn, name)

    def index_database(self, name: str) -> str:
        """The DSN of database `name` (after the tests' prefix), created with the index's
        schema the first time it is asked for: a registry started again on the same store
        finds the index it left."""
        import asyncio

        import psycopg
        from psycopg import sql

        from dockyard.index.postgres import PostgresIndex

        name = f"{DATABASE_PREFIX}{name}"
        with self._lock:
            if name in self.created:
                return with_database(self.admin_dsn, name)
            self.created.append(name)
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = with_database(self.admin_dsn, name)
        index = PostgresIndex(dsn)

        async def migrate() -> None:
            try:
                await index.migrate()
            finally:
                await index.aclose()

        asyncio.run(migrate())
        return dsn

    def stop(self) -> None:
        """Stop a private server (fast shutdown: sessions are cut, as in an outage)."""
        assert self.control is not None, "only a private server can be stopped"
        _run([*self.control, "-m", "fast", "-w", "stop"], "pg_ctl stop", self.log)

    def start(self) -> None:
        """Start a stopped private server again, on the same port."""
        assert self.control is not None, "only a private server can be started"
        _run([*self.control, "-w", "-t", "60", "-l", str(self.log), "-o", self.start_options,
              "start"], "pg_ctl start", self.log)

    def drop_created_databases(self) -> None:
        import psycopg
        from psycopg import sql

        with self._lock:
            names, self.created = self.created, []
        if not names:
            return
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=30) as conn:
            for name in names:
                # FORCE (PostgreSQL 13+) ends sessions a test left open.
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)
                    )
                )


def _server_user() -> pwd.struct_passwd | None:
    """The OS user to run the server as: None for ourselves, ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        _missing(f"the {SERVER_USER!r} user (PostgreSQL refuses to run as root)")
        raise AssertionError("unreachable") from None


def _private_root(owner: pwd.struct_passwd | None) -> Path:
    """A new temporary directory that ``owner`` owns and can reach.

    Short paths keep the unix socket under the kernel's 108-byte limit; as root, a
    directory under a parent that ``postgres`` cannot traverse (pytest's
    /tmp/pytest-of-root is 0700) would not do, so each candidate is checked as that user.
    """
    candidates = dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp"])
    for parent in candidates:
        if not os.path.isdir(parent):
            continue
        root = Path(tempfile.mkdtemp(prefix="dy-pg-", dir=parent))
        if owner is None:
            return root
        os.chown(root, owner.pw_uid, owner.pw_gid)
        check = subprocess.run(
            ["runuser", "-u", owner.pw_name, "--", "test", "-w", str(root), "-a", "-x", str(root)],
            capture_output=True,
            check=False,
        )
        if check.returncode == 0:
            return root
        shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(
        f"no temporary directory that the {SERVER_USER!r} user can reach "
        f"(tried {', '.join(candidates)})"
    )


def _as(owner: pwd.struct_passwd | None, command: list[str]) -> list[str]:
    if owner is None:
        return command
    return ["runuser", "-u", owner.pw_name, "--", *command]


def _run(command: list[str], what: str, log: Path | None = None, timeout: float = 120) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        server_log = ""
        if log is not None and log.exists():
            server_log = f"\nserver log:\n{log.read_text(errors='replace')[-4000:]}"
        raise RuntimeError(
            f"{what} failed ({result.returncode}): {' '.join(command)}\n"
            f"{result.stdout}{result.stderr}{server_log}"
        )


@contextmanager
def run_postgres(start_attempts: int = 3) -> Iterator[PostgresServer]:
    """A private PostgreSQL server on a free loopback port, removed when the block ends."""
    bindir = require_pg_bindir()
    owner = _server_user()
    root = _private_root(owner)
    data, sockets, log = root / "data", root / "sock", root / "postgres.log"
    try:
        sockets.mkdir(mode=0o700)
        if owner is not None:
            os.chown(sockets, owner.pw_uid, owner.pw_gid)
        _run(
            _as(owner, [str(bindir / "initdb"), "-A", "trust", "-U", SUPERUSER, "-D", str(data),
                        "--no-sync", "-E", "UTF8", "--locale=C"]),
            "initdb",
        )
        # Another process may take the free port before the server binds it: try again.
        for attempt in range(start_attempts):
            port = free_port()
            options = (
                f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200"
            )
            try:
                _run(
                    _as(owner, [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                                "-l", str(log), "-o", options, "start"]),
                    "pg_ctl start",
                    log,
                )
                break
            except RuntimeError:
                if attempt == start_attempts - 1:
                    raise
        try:
            dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
            yield PostgresServer(
                host="127.0.0.1",
                port=port,
                user=SUPERUSER,
                admin_dsn=dsn,
                data_dir=data,
                os_user=owner.pw_name if owner is not None else pwd.getpwuid(os.geteuid()).pw_name,
                control=_as(owner, [str(bindir / "pg_ctl"), "-D", str(data)]),
                start_options=options,
                log=log,
            )
        finally:
            _run(
                _as(owner, [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate",
                            "stop"]),
                "pg_ctl stop",
                log,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def external_postgres(dsn: str) -> Iterator[PostgresServer]:
    """The server named by a DSN; the databases made on it are dropped when the block ends."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    server = PostgresServer(
        host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 5432),
        user=str(params.get("user") or pwd.getpwuid(os.geteuid()).pw_name),
        admin_dsn=dsn,
    )
    try:
        yield server
    finally:
        server.drop_created_databases()


@contextmanager
def postgres_server_for_run() -> Iterator[PostgresServer]:
    """The external server when ``DOCKYARD_TEST_POSTGRES_DSN`` is set, else a private one."""
    require_psycopg()
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        with external_postgres(external) as server:
            yield server
    else:
        with run_postgres() as server:
            yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (per xdist worker when private)."""
    with postgres_server_for_run() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a fresh, empty database of this test's own."""
    return postgres_server.new_database()
