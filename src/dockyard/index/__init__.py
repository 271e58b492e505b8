"""The metadata index: repositories, tags, manifests and layer links, queryable without
walking the store. The store stays the source of truth; the index can always be rebuilt."""

from dockyard.index.base import (
    Index,
    IndexUnavailable,
    IndexWrite,
    ManifestRecord,
    ReferrerRow,
    RepositoryContents,
    RepositorySnapshot,
    SchemaMismatch,
)
from dockyard.index.sqlite import SQLiteIndex, open_index

__all__ = ["Index", "IndexUnavailable", "IndexWrite", "ManifestRecord", "ReferrerRow",
           "RepositoryContents", "RepositorySnapshot", "SQLiteIndex", "SchemaMismatch",
           "open_index"]
