"""Opening what a configuration names: the storage driver, the metadata index and the
registry over them."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dockyard.auth.throttle import LoginThrottle, SQLiteLoginThrottle
from dockyard.config import Config
from dockyard.index import Index, SQLiteIndex, open_index
from dockyard.index.sqlite import INDEX_DIR, INDEX_FILE, index_path
from dockyard.registry.events import NO_EVENTS, EventLog
from dockyard.registry.registry import Registry, RegistrySettings
from dockyard.storage import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver


def make_driver(config: Config) -> StorageDriver:
    if config.storage.driver == "inmemory":
        return MemoryDriver()
    if config.storage.s3 is not None:
        from dockyard.storage.s3 import S3Driver

        return S3Driver(config.storage.s3)
    return FilesystemDriver(config.storage.root_directory)


def bucket_problem(config: Config) -> str | None:
    """Why the S3 bucket cannot be used (wrong endpoint, bucket or credentials), found by
    listing its root once; None if it can, or if the store is not S3."""
    if config.storage.s3 is None:
        return None
    import asyncio

    from dockyard.storage.s3 import S3Driver

    driver = S3Driver(config.storage.s3)

    async def probe() -> None:
        try:
            await driver.list("/")
        finally:
            await driver.close()

    try:
        asyncio.run(probe())
    except Exception as error:
        return f"dockyard: storage.s3: bucket {config.storage.s3.bucket} is not usable: {error}"
    return None


def store_location(config: Config) -> str:
    """Where the store is, for people: its directory, or s3://bucket/rootdirectory."""
    if config.storage.s3 is not None:
        s3 = config.storage.s3
        return f"s3://{s3.bucket}/{s3.rootdirectory.strip('/')}".rstrip("/")
    return config.storage.root_directory


def make_login_throttle(config: Config) -> LoginThrottle | None:
    """Failed logins counted where every worker sees them (every host too, with
    `database.enabled`: in that database); None with auth.throttle off."""
    limits = config.login_throttle
    if not limits.enabled:
        return None
    if config.database.enabled:
        from dockyard.auth.throttle_postgres import PostgresLoginThrottle

        database = config.database
        return PostgresLoginThrottle(database.conninfo(), database.pool.psycopg_pool_arguments(),
                                     database.location(), limits.per_account,
                                     limits.per_client, limits.window)
    path = ":memory:"
    if config.storage.driver != "inmemory":
        directory = os.path.join(config.storage.root_directory, INDEX_DIR)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "logins.sqlite")
    return SQLiteLoginThrottle(path, limits.per_account, limits.per_client, limits.window)


def make_index(config: Config) -> Index:
    """The index the config names: PostgreSQL with `database.enabled`, else the SQLite
    file beside the store (in memory with the in-memory store)."""
    if config.database.enabled:
        from dockyard.index.postgres import PostgresIndex

        database = config.database
        return PostgresIndex(database.conninfo(), database.pool.psycopg_pool_arguments(),
                             database.location())
    in_memory = config.storage.driver == "inmemory"
    return open_index(None if in_memory else config.storage.root_directory)


@contextlib.contextmanager
def scratch_index(config: Config) -> Iterator[Index]:
    """A private copy of the store's index, in a temporary directory, for work that must
    change nothing on disk (dry runs): it can be brought up to date with the store and
    written freely. A copy that cannot be read starts empty and is filled from the store.
    An index in PostgreSQL is shared by every registry and kept in line with the store by
    them: it is used as it is."""
    if config.database.enabled:
        yield make_index(config)
        return
    with tempfile.TemporaryDirectory(prefix="dockyard-") as scratch:
        copy = os.path.join(scratch, INDEX_FILE)
        source = index_path(config.storage.root_directory)
        if os.path.exists(source):
            for suffix in ("", "-wal"):
                with contextlib.suppress(FileNotFoundError):
                    shutil.copyfile(source + suffix, copy + suffix)
        try:
            index = SQLiteIndex(copy)  # reads the copy's schema: a torn one fails here
        except sqlite3.DatabaseError:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(copy + suffix)
            index = SQLiteIndex(copy)
        try:
            yield index
        finally:
            index.close()


def make_registry(config: Config, driver: StorageDriver) -> Registry:
    settings = RegistrySettings(
        delete_enabled=config.storage.delete_enabled,
        read_only=config.storage.read_only,
        max_manifest_size=config.max_manifest_size,
        max_uploads_per_repository=config.max_uploads_per_repository,
        redirect_blob_reads=not config.storage.redirect_disabled,
        sole_writer=config.storage.sole_writer,
        gc_grace_period=config.storage.gc.grace_period,
    )
    events = make_event_log(config)
    if config.proxy is None:
        return Registry(driver, make_index(config), settings, events)
    from dockyard.proxy.registry import CachingRegistry

    return CachingRegistry(driver, make_index(config), settings, config.proxy,
                           spool_directory(config), events)


# Set by the server for its workers, so their events name one instance, as distribution's.
INSTANCE_ENV = "DOCKYARD_INSTANCE_ID"


def make_event_log(config: Config) -> EventLog:
    notifications = config.notifications
    if not notifications.endpoints:
        return NO_EVENTS
    return EventLog(notifications, f"{socket.gethostname()}:{config.http.port}",
                    os.environ.get(INSTANCE_ENV))


def spool_directory(config: Config) -> Path:
    """Where blobs being fetched from an upstream are spooled for the clients waiting on
    them: beside the index, on the registry's own disk (a temporary directory with the
    in-memory store)."""
    if config.storage.driver == "inmemory":
        return Path(tempfile.gettempdir()) / f"dockyard-fetches-{os.getpid()}"
    return Path(config.storage.root_directory) / INDEX_DIR / "fetches"
