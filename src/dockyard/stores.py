"""Opening what a configuration names: the storage driver and the metadata index."""

from __future__ import annotations

from dockyard.config import Config
from dockyard.index import SQLiteIndex, open_index
from dockyard.storage import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver


def make_driver(config: Config) -> StorageDriver:
    if config.storage.driver == "inmemory":
        return MemoryDriver()
    return FilesystemDriver(config.storage.root_directory)


def make_index(config: Config) -> SQLiteIndex:
    in_memory = config.storage.driver == "inmemory"
    return open_index(None if in_memory else config.storage.root_directory)
