"""Opening what a configuration names: the storage driver and the metadata index."""

from __future__ import annotations

import os

from dockyard.auth.throttle import LoginThrottle
from dockyard.config import Config
from dockyard.index import SQLiteIndex, open_index
from dockyard.index.sqlite import INDEX_DIR
from dockyard.storage import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver


def make_driver(config: Config) -> StorageDriver:
    if config.storage.driver == "inmemory":
        return MemoryDriver()
    return FilesystemDriver(config.storage.root_directory)


def make_login_throttle(config: Config) -> LoginThrottle:
    """Failed logins counted where every worker sees them."""
    if config.storage.driver == "inmemory":
        return LoginThrottle()
    directory = os.path.join(config.storage.root_directory, INDEX_DIR)
    os.makedirs(directory, exist_ok=True)
    return LoginThrottle(os.path.join(directory, "logins.sqlite"))


def make_index(config: Config) -> SQLiteIndex:
    in_memory = config.storage.driver == "inmemory"
    return open_index(None if in_memory else config.storage.root_directory)
