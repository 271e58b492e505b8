"""Storage drivers: a small interface over a flat, path-addressed object space."""

from dockyard.storage.driver import (
    FileInfo,
    FileWriter,
    PathNotFound,
    StorageDriver,
    UnsafeWrite,
)

__all__ = ["FileInfo", "FileWriter", "PathNotFound", "StorageDriver", "UnsafeWrite"]
