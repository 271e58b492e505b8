"""What a person browsing the registry asks of the index: pages of repositories and tags
found by a part of their name, and how much each holds, answered without reading the store.

Sizes follow what `dockyard du` counts: from a tag, its manifest, what the manifest needs
(config, layers, an index's children, recursively) and the referrers of each, every blob
once per repository however many tags reach it. The sizes are the ones the manifests'
descriptors give, recorded with the references.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from dockyard.index.base import RepositorySummary, TagRow

Row = tuple[Any, ...]

# `reach` (repository, root, digest, size): everything reachable from the rows `{base}`
# selects (each a repository, the root it is counted for, a manifest and its size).
# UNION, not UNION ALL: each (root, digest) once, which also ends any cycle.
_REACH = """
WITH RECURSIVE edges (repository, parent, digest, size) AS (
    SELECT repository, manifest, digest, size FROM manifest_references
    UNION ALL
    SELECT repository, subject, digest, size FROM manifests WHERE subject IS NOT NULL
), reach (repository, root, digest, size) AS (
    {base}
    UNION
    SELECT reach.repository, reach.root, edges.digest, edges.size FROM reach
    JOIN edges ON edges.repository = reach.repository AND edges.parent = reach.digest
)
{select}
"""
# The same with one recursive step per kind of edge, for SQLite (3.34 and later), which
# would otherwise build `edges` whole (every reference in the index) for each query; the
# partial index on subjects has to be named, as SQLite's planner does not pick it here.
REACH_SQLITE = """
WITH RECURSIVE reach (repository, root, digest, size) AS (
    {base}
    UNION
    SELECT reach.repository, reach.root, refs.digest, refs.size FROM reach
    JOIN manifest_references AS refs
        ON refs.repository = reach.repository AND refs.manifest = reach.digest
    UNION
    SELECT reach.repository, reach.root, referrer.digest, referrer.size FROM reach
    JOIN manifests AS referrer INDEXED BY manifests_by_subject
        ON referrer.repository = reach.repository AND referrer.subject = reach.digest
)
{select}
"""
_BY_ROOT = "SELECT root, COALESCE(SUM(size), 0) FROM reach GROUP BY root"

_TAGGED = ("SELECT tags.repository, tags.repository, tags.digest, manifests.size FROM tags "
           "JOIN manifests ON manifests.repository = tags.repository "
           "AND manifests.digest = tags.digest")


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def name_pattern(contains: str) -> str:
    """A LIKE pattern matching names that contain `contains` as it is written."""
    escaped = contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_LIKE = "LIKE ? ESCAPE '\\'"
# What `entry_counts` counts.
ENTRY_KINDS = ("repositories", "tags", "manifests", "blobs", "blob_bytes")


class SummaryQueries:
    """The index's answers for browsing; mixed into the SQL index."""

    # What a database answers fastest: PostgreSQL plans the shared `edges` well.
    reach_query = _REACH

    @abstractmethod
    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def _bulk(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def count_repositories(self, contains: str = "") -> int:
        if not contains:
            rows = await self._all("SELECT count(*) FROM repositories")
        else:
            rows = await self._all(f"SELECT count(*) FROM repositories WHERE name {_LIKE}",
                                   (name_pattern(contains),))
        return int(rows[0][0])

    async def find_repositories(self, contains: str, offset: int, limit: int) -> list[str]:
        where, params = ("", ()) if not contains else (f"WHERE name {_LIKE}",
                                                        (name_pattern(contains),))
        return [row[0] for row in await self._all(
            f"SELECT name FROM repositories {where} ORDER BY name LIMIT ? OFFSET ?",
            (*params, limit, offset))]

    async def repository_summaries(self, names: Sequence[str] | None = None
                                   ) -> dict[str, RepositorySummary]:
        """Tag counts, sizes and last layer links of `names` (None: every repository)."""
        if names is not None and not names:
            return {}
        read = self._bulk if names is None else self._all
        within = "" if names is None else f" WHERE tags.repository IN ({marks(names)})"
        params = () if names is None else tuple(names)
        reach = self.reach_query.format(base=_TAGGED + within, select=_BY_ROOT)
        sizes: dict[str, Any] = dict(await read(reach, params))
        where = "" if names is None else f" WHERE repository IN ({marks(names)})"
        counts: dict[str, Any] = dict(await read(
            f"SELECT repository, count(*) FROM tags{where} GROUP BY repository", params))
        pushed: dict[str, Any] = dict(await read(
            f"SELECT repository, at FROM links_written{where}", params))
        every = names if names is not None else [
            row[0] for row in await self._bulk("SELECT name FROM repositories")]
        return {name: RepositorySummary(name, int(counts.get(name, 0)),
                                        int(sizes.get(name, 0)),
                                        None if pushed.get(name) is None
                                        else float(pushed[name]))
                for name in every}

    async def count_tags(self, repository: str, contains: str = "") -> int:
        query = "SELECT count(*) FROM tags WHERE repository = ?"
        params: tuple[str, ...] = (repository,)
        if contains:
            query, params = query + f" AND tag {_LIKE}", (repository, name_pattern(contains))
        return int((await self._all(query, params))[0][0])

    async def tag_page(self, repository: str, contains: str, offset: int, limit: int
                       ) -> list[TagRow]:
        """Tags in order with what they name; `contains` as in count_tags."""
        query = ("SELECT tags.tag, tags.digest, manifests.media_type, manifests.size, "
                 "manifests.artifact_type, tags.pushed FROM tags LEFT JOIN manifests "
                 "ON manifests.repository = tags.repository AND manifests.digest = tags.digest "
                 "WHERE tags.repository = ?")
        params: tuple[Any, ...] = (repository,)
        if contains:
            query, params = query + f" AND tags.tag {_LIKE}", (*params, name_pattern(contains))
        rows = await self._all(query + " ORDER BY tags.tag LIMIT ? OFFSET ?",
                               (*params, limit, offset))
        return [TagRow(tag, digest, media_type or "", int(size or 0), artifact_type,
                       None if pushed is None else float(pushed))
                for tag, digest, media_type, size, artifact_type, pushed in rows]

    async def reach_sizes(self, repository: str, digests: Sequence[str]) -> dict[str, int]:
        """For each manifest of `repository` in `digests`: it, what it needs and its
        referrers, each blob once."""
        if not digests:
            return {}
        base = ("SELECT repository, digest, digest, size FROM manifests "
                f"WHERE repository = ? AND digest IN ({marks(digests)})")
        rows = await self._all(self.reach_query.format(base=base, select=_BY_ROOT),
                               (repository, *digests))
        return {row[0]: int(row[1]) for row in rows}

    async def manifest_digests(self, repository: str) -> list[str]:
        return [row[0] for row in await self._all(
            "SELECT digest FROM manifests WHERE repository = ? ORDER BY digest", (repository,))]

    async def stored_size(self) -> tuple[int, int]:
        """How many distinct blobs and manifests every tag reaches, and their size (each
        once, however many repositories share it)."""
        rows = await self._bulk(self.reach_query.format(
            base=_TAGGED, select="SELECT count(*), COALESCE(SUM(size), 0) FROM "
                                 "(SELECT DISTINCT digest, size FROM reach) AS reached"))
        return int(rows[0][0]), int(rows[0][1])

    async def entry_counts(self) -> dict[str, int]:
        """Rows of each kind the index holds, and the bytes of its blobs."""
        rows = await self._bulk(
            "SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM tags), "
            "(SELECT count(*) FROM manifests), (SELECT count(*) FROM blobs), "
            "(SELECT COALESCE(SUM(size), 0) FROM blobs)")
        return dict(zip(ENTRY_KINDS, (int(value) for value in rows[0]), strict=True))
