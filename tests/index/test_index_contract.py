"""The index's interface, run against both databases: the SQLite file and PostgreSQL.

Each test opens two index objects on one database, as two registry processes (or hosts)
would, and checks what one sees of the other's writes, transactions and locks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.index import Index, ManifestRecord, RepositoryContents, SchemaMismatch
from dockyard.index.locks import LockTimeout
from dockyard.index.schema import LATEST
from dockyard.index.sql import REFERRER_BATCH
from dockyard.index.sqlite import SQLiteIndex

Opener = Callable[[], Index]


@pytest.fixture(params=["sqlite", "postgres"])
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens another index object on this test's one database."""
    if request.param == "sqlite":
        path = str(tmp_path / "index.sqlite")
        return lambda: SQLiteIndex(path)
    from dockyard.index.postgres import PostgresIndex

    dsn: str = request.getfixturevalue("postgres_dsn")

    async def migrate() -> None:
        index = PostgresIndex(dsn)
        await index.migrate()
        await index.aclose()

    asyncio.run(migrate())
    return lambda: PostgresIndex(dsn)


@asynccontextmanager
async def opened(opener: Opener) -> AsyncIterator[Index]:
    index = opener()
    try:
        yield index
    finally:
        await index.aclose()
        index.close()


def run(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(work())


def manifest(digest: str, *needs: str, subject: str | None = None,
             artifact_type: str | None = None) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", 100,
                          subject, artifact_type, {"n": digest} if subject else None, needs)


def test_listings_are_in_byte_order_and_paginate(open_index: Opener) -> None:
    # Byte order, as distribution lists: '-' < '.' < '/' < digits < upper < '_' < lower.
    names = ["a_b", "a-b", "a.b", "a/b", "a0", "aB", "ab", "b"]

    async def work() -> None:
        async with opened(open_index) as index:
            async with index.writing() as db:
                for name in names:
                    await db.record_manifest(name, manifest("sha256:1"), "latest")
                for tag in ["v1.10", "v1.9", "V2", "latest", "v1-rc"]:
                    await db.record_manifest("ab", manifest("sha256:1"), tag)
            assert await index.repositories() == sorted(names, key=str.encode)
            assert await index.repositories("a.b", 3) == ["a/b", "a0", "aB"]
            assert await index.tags("ab") == ["V2", "latest", "v1-rc", "v1.10", "v1.9"]
            assert await index.tags("ab", "latest", 2) == ["v1-rc", "v1.10"]
            assert await index.has_repository("a/b")
            assert not await index.has_repository("a")
            assert (await index.tag_counts())["ab"] == 5
            assert await index.tags_of("ab", "sha256:1") == [
                "V2", "latest", "v1-rc", "v1.10", "v1.9"]
            assert await index.tags_of("ab", "sha256:2") == []

    run(work)


def test_a_write_is_seen_by_another_index_at_once_and_moves_its_version(
        open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as first, opened(open_index) as second:
            before = await second.version()
            async with first.writing() as db:
                await db.record_manifest("team/app", manifest("sha256:a"), "v1")
            assert await second.version() != before
            assert await second.tags("team/app") == ["v1"]
            unchanged = await second.version()
            assert await second.version() == unchanged  # reads do not move it
            await first.remove_tag("team/app", "v1")
            assert await second.version() != unchanged
            assert await second.tags("team/app") == []

    run(work)


def test_writers_on_two_indexes_follow_one_another(open_index: Opener) -> None:
    """What one writer reads inside its transaction stays true until it commits: the
    second writer waits (this is what keeps a manifest's blob check and a collection's
    delete apart)."""
    async def work() -> None:
        async with opened(open_index) as first, opened(open_index) as second:
            order: list[str] = []
            inside = asyncio.Event()

            async def slow_writer() -> None:
                async with first.writing() as db:
                    inside.set()
                    await asyncio.sleep(0.3)
                    await db.record_blob("sha256:b", 1)
                    order.append("first committed")

            async def second_writer() -> None:
                await inside.wait()
                async with second.writing() as db:
                    order.append("second began")
                    assert await db.blobs_created(["sha256:b"]) != {}

            if isinstance(first, SQLiteIndex):
                # One connection is one SQLite session: a busy file blocks the event loop,
                # so the second writer runs in a thread of its own.
                task = asyncio.create_task(slow_writer())
                await inside.wait()
                await asyncio.to_thread(asyncio.run, second_writer())
                await task
            else:
                await asyncio.gather(slow_writer(), second_writer())
            assert order == ["first committed", "second began"]

    run(work)


def test_a_failed_write_leaves_nothing(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as index:
            with pytest.raises(RuntimeError):
                async with index.writing() as db:
                    await db.record_manifest("team/app", manifest("sha256:a"), "v1")
                    raise RuntimeError("the store write failed")
            assert await index.repositories() == []
            assert await index.tags("team/app") == []

    run(work)


def test_referrers_come_in_digest_order_filtered_and_after_a_digest(
        open_index: Opener) -> None:
    count = REFERRER_BATCH * 2 + 3

    async def work() -> None:
        async with opened(open_index) as index:
            async with index.writing() as db:
                await db.record_manifest("team/app", manifest("sha256:s"), "v1")
                for n in range(count):
                    kind = "sig" if n % 2 else "sbom"
                    await db.record_manifest("team/app", manifest(
                        f"sha256:r{n:03}", subject="sha256:s", artifact_type=kind), None)
            every = [row.digest async for row in index.referrers("team/app", "sha256:s", None)]
            assert every == [f"sha256:r{n:03}" for n in range(count)]
            signatures = [row async for row in index.referrers("team/app", "sha256:s", "sig")]
            assert [row.artifact_type for row in signatures] == ["sig"] * (count // 2)
            assert signatures[0].annotations_json == '{"n": "sha256:r001"}'
            after = [row.digest async for row in index.referrers(
                "team/app", "sha256:s", None, "sha256:r030")]
            assert after == [f"sha256:r{n:03}" for n in range(31, count)]

    run(work)


def test_what_garbage_collection_asks(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as index:
            started = time.time()
            async with index.writing() as db:
                for digest in ("sha256:l1", "sha256:l2", "sha256:c", "sha256:old"):
                    await db.record_blob(digest, 10)
                await db.link_layer("team/app", "sha256:l1")
                await db.link_layer("team/app", "sha256:old")
                await db.link_layer("team/empty", "sha256:old")
                await db.record_manifest("team/app", manifest("sha256:m", "sha256:l1",
                                                              "sha256:c"), "v1")
            async with index.writing() as db:
                candidates = ["sha256:l1", "sha256:l2", "sha256:c", "sha256:m", "sha256:old"]
                assert await db.referenced_among(candidates) == {
                    "sha256:l1", "sha256:c", "sha256:m"}
                created = await db.blobs_created(candidates)
                assert set(created) == {"sha256:l1", "sha256:l2", "sha256:c", "sha256:old"}
                assert all(size == 10 and when >= started - 1
                           for size, when in created.values())
                assert sorted(await db.links_among(["sha256:old", "sha256:l2"])) == [
                    ("team/app", "sha256:old"), ("team/empty", "sha256:old")]
                assert await db.with_manifests_among(["team/app", "team/empty"]) == {
                    "team/app"}
                assert await db.linked_since(["team/app", "team/empty"], started - 1) == {
                    "team/app", "team/empty"}
                assert await db.linked_since(["team/app"], time.time() + 60) == set()
                assert await db.is_needed("team/app", "sha256:m")  # tagged
                await db.forget_blobs(["sha256:old", "sha256:l2"])
                await db.forget_repositories(["team/empty"])
            assert set(await index.all_blobs_created()) == {"sha256:l1", "sha256:c"}
            assert await index.repositories() == ["team/app"]
            assert await index.repositories_without_manifests() == []
            assert await index.referenced_digests() == {"sha256:l1", "sha256:c", "sha256:m"}
            assert await index.all_tagged() == [("team/app", "sha256:m")]
            assert sorted(await index.references_of("team/app", "sha256:m")) == [
                "sha256:c", "sha256:l1"]
            await index.remove_tag("team/app", "v1")
            async with index.writing() as db:
                assert not await db.is_needed("team/app", "sha256:m")
                await db.forget_manifest("team/app", "sha256:m")
            assert await index.all_manifests() == []
            assert await index.repositories_without_manifests() == ["team/app"]

    run(work)


def test_snapshots_and_replacing_a_repository(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as index:
            async with index.writing() as db:
                await db.record_manifest("team/app", manifest("sha256:m1"), "v1")
                await db.replace_repository(RepositoryContents(
                    "team/other", {"v2": "sha256:m2"}, [manifest("sha256:m2", "sha256:l")],
                    ["sha256:l"]))
            snapshots = await index.snapshots()
            assert snapshots["team/other"].tags == {"v2": "sha256:m2"}
            assert snapshots["team/other"].manifests == frozenset({"sha256:m2"})
            assert snapshots["team/other"].layers == frozenset({"sha256:l"})
            assert snapshots["team/app"].layers == frozenset()
            async with index.writing() as db:
                await db.replace_repository(RepositoryContents("team/other", {}, [], []))
            assert (await index.snapshots())["team/other"].tags == {}
            await index.remove_repository("team/other")
            assert await index.repositories() == ["team/app"]

    run(work)


def test_meta_values_and_completeness(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as first, opened(open_index) as second:
            assert not await first.is_complete()
            await first.mark_complete()
            assert await second.is_complete()
            await first.set_meta("lease", "holder-1|123")
            async with second.writing() as db:
                assert await db.get_meta("lease") == "holder-1|123"
                await db.delete_meta("lease", "holder-2|")  # not ours: stays
            assert await first.get_meta("lease") == "holder-1|123"
            async with second.writing() as db:
                await db.delete_meta("lease", "holder-1|")
            assert await first.get_meta("lease") is None

    run(work)


def test_a_named_lock_holds_across_indexes(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as first, opened(open_index) as second:
            async with first.locks.hold("upload-1"):
                async with second.locks.hold_if_free("upload-1") as ours:
                    assert not ours
                with pytest.raises(LockTimeout):
                    async with second.locks.hold("upload-1", timeout=0.2):
                        pass
                async with second.locks.hold_if_free("upload-2") as ours:
                    assert ours  # another key is free
            async with second.locks.hold("upload-1", timeout=5):
                pass

    run(work)


def test_postgres_schema_is_checked_and_migrated(postgres_dsn: str) -> None:
    from dockyard.index.postgres import PostgresIndex

    async def work() -> None:
        index = PostgresIndex(postgres_dsn)
        try:
            with pytest.raises(SchemaMismatch, match="run `dockyard index migrate`"):
                await index.check_schema()
            applied = await index.migrate()
            assert [migration.version for migration in applied] == list(range(2, LATEST + 1))
            await index.check_schema()
            assert await index.migrate() == []
            await index.set_meta("schema_version", str(LATEST + 1))
            with pytest.raises(SchemaMismatch, match="newer than this dockyard knows"):
                await index.check_schema()
            with pytest.raises(SchemaMismatch, match="newer than this dockyard knows"):
                await index.migrate()
        finally:
            await index.aclose()

    asyncio.run(work())


def test_sqlite_refuses_a_schema_from_a_later_version(tmp_path: Path) -> None:
    path = str(tmp_path / "index.sqlite")
    SQLiteIndex(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(LATEST + 1),))
    db.close()
    with pytest.raises(SchemaMismatch, match="newer than this dockyard knows"):
        SQLiteIndex(path)


def sized(digest: str, needs: dict[str, int], size: int = 100,
          subject: str | None = None) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", size,
                          subject, None, None, tuple(needs), tuple(needs.values()))


def test_browsing_finds_by_part_of_a_name_and_sizes_what_tags_reach(open_index: Opener
                                                                    ) -> None:
    """Sizes count a tagged manifest, what it needs down an index's children, and its
    referrers, each blob once per repository; untagged manifests count for nothing; a
    search for `_` or `%` finds those characters, not any character."""
    async def work() -> None:
        async with opened(open_index) as index:
            async with index.writing() as db:
                # team/app: an index of two images sharing a layer, and a signature.
                await db.record_manifest("team/app", sized("sha256:i1", {"sha256:c1": 10,
                                         "sha256:shared": 1000}, 200), None)
                await db.record_manifest("team/app", sized("sha256:i2", {"sha256:c2": 20,
                                         "sha256:shared": 1000}, 300), None)
                index_record = ManifestRecord(
                    "sha256:idx", "application/vnd.oci.image.index.v1+json", 400, None, None,
                    None, ("sha256:i1", "sha256:i2"), (200, 300))
                await db.record_manifest("team/app", index_record, "v1")
                await db.record_manifest("team/app", index_record, "latest")
                await db.record_manifest("team/app", sized("sha256:sig", {"sha256:s": 5}, 50,
                                                           subject="sha256:idx"), None)
                await db.record_manifest("team/app", sized("sha256:old", {"sha256:big": 10**6}),
                                         None)
                await db.record_manifest("other_x", sized("sha256:o", {"sha256:shared": 1000},
                                                          100), "1")
                await db.record_manifest("otherax", sized("sha256:q", {}, 7), "1")
                await db.link_layer("other_x", "sha256:shared")

            whole = 400 + 200 + 300 + 10 + 20 + 1000 + 50 + 5
            summaries = await index.repository_summaries()
            assert summaries["team/app"].tags == 2
            assert summaries["team/app"].size == whole
            assert summaries["team/app"].pushed is None
            assert summaries["other_x"].size == 1100
            assert summaries["other_x"].pushed is not None
            assert summaries["otherax"].size == 7
            assert await index.repository_summaries(["otherax"]) == {
                "otherax": summaries["otherax"]}

            assert await index.count_repositories() == 3
            assert await index.count_repositories("_") == 1
            assert await index.find_repositories("_", 0, 10) == ["other_x"]
            assert await index.find_repositories("%", 0, 10) == []
            assert await index.find_repositories("OTHER", 0, 10) == ["other_x", "otherax"]
            assert await index.find_repositories("", 1, 1) == ["otherax"]

            assert await index.count_tags("team/app") == 2
            assert await index.count_tags("team/app", "v") == 1
            rows = await index.tag_page("team/app", "", 0, 10)
            assert [(row.tag, row.digest, row.size) for row in rows] == [
                ("latest", "sha256:idx", 400), ("v1", "sha256:idx", 400)]
            assert rows[0].media_type == "application/vnd.oci.image.index.v1+json"
            assert await index.reach_sizes("team/app", ["sha256:i1", "sha256:idx"]) == {
                "sha256:i1": 1210, "sha256:idx": whole}
            # Shared by two repositories, counted once.
            assert await index.stored_size() == (10, whole + 100 + 7)

    run(work)


def test_entry_counts_count_every_row_once(open_index: Opener) -> None:
    async def work() -> None:
        async with opened(open_index) as index:
            assert await index.entry_counts() == {
                "repositories": 0, "tags": 0, "manifests": 0, "blobs": 0, "blob_bytes": 0}
            async with index.writing() as db:
                await db.record_blob("sha256:a", 10)
                await db.record_blob("sha256:b", 2000)
                await db.record_manifest("team/app", manifest("sha256:m1", "sha256:a"), "v1")
                await db.record_manifest("team/app", manifest("sha256:m1", "sha256:a"), "v2")
                await db.record_manifest("team/other", manifest("sha256:m2", "sha256:b"), None)
            assert await index.entry_counts() == {
                "repositories": 2, "tags": 2, "manifests": 2, "blobs": 2, "blob_bytes": 2010}

    run(work)
