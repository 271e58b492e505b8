"""Background upkeep: removing uploads abandoned for longer than the purge age, and
picking up changes made to the store by something other than this registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from dockyard.index.base import Index, IndexUnavailable, Locks
from dockyard.registry import catalog, layout
from dockyard.registry.read_only import ReadOnlyMode
from dockyard.registry.reindex import synchronize
from dockyard.registry.uploads import read_started_at, upload_lock_key
from dockyard.storage import FileInfo, PathNotFound, StorageDriver

log = logging.getLogger("dockyard.maintenance")


async def purge_uploads(driver: StorageDriver, locks: Locks, age: float,
                        dry_run: bool = False, files: Sequence[FileInfo] | None = None
                        ) -> list[str]:
    """Delete uploads idle for more than `age` seconds; returns "repo/uuid" of each. An
    upload a request is writing to right now is not idle, whatever its files say.
    `files`, a recent listing of the whole repositories tree, saves making another (an
    upload started since is not idle anyway)."""
    now = datetime.now(UTC)
    purged: list[str] = []
    names = (sorted(catalog.group_by_repository(files, ("_uploads",))) if files is not None
             else await catalog.list_repositories_with_uploads(driver))
    for name in names:
        try:
            upload_ids = await driver.list(layout.uploads(name))
        except PathNotFound:
            continue
        for upload_id in upload_ids:
            async with locks.hold_if_free(upload_lock_key(name, upload_id)) as free:
                if not free or not await _idle_for(driver, name, upload_id, now, age):
                    continue
                purged.append(f"{name}/{upload_id}")
                if not dry_run:
                    with contextlib.suppress(PathNotFound):
                        await driver.delete(layout.upload_dir(name, upload_id))
    return purged


async def _idle_for(driver: StorageDriver, name: str, upload_id: str, now: datetime,
                    age: float) -> bool:
    last = await last_activity(driver, name, upload_id)
    return last is not None and (now - last).total_seconds() >= age


async def last_activity(driver: StorageDriver, name: str, upload_id: str) -> datetime | None:
    """When an upload last received data, or started if it has none; None if it is gone."""
    # Age counts from the last data received, so a slow upload that is still going is not
    # cut off; an upload with no data counts from its start.
    started = await read_started_at(driver, name, upload_id)
    info = await driver.stat_writer(layout.upload_data(name, upload_id))
    if info is None:
        info = await driver.stat(layout.upload_dir(name, upload_id))
    if info is None:
        return None
    last = datetime.fromtimestamp(info.modified, UTC)
    if started is not None:
        last = max(last, started)
    return last


async def purge_uploads_forever(driver: StorageDriver, locks: Locks, age: float,
                                interval: float, dry_run: bool,
                                read_only: ReadOnlyMode | None = None) -> None:
    """Purge abandoned uploads every `interval`, skipping rounds while the registry is in
    read-only maintenance mode (but for dry runs, which delete nothing)."""
    # Like distribution, wait a little after start so a restart loop does not hammer storage.
    await asyncio.sleep(min(60.0, interval))
    while True:
        try:
            paused = not dry_run and read_only is not None and await read_only.is_on()
            purged = [] if paused else await purge_uploads(driver, locks, age, dry_run)
            if purged:
                log.info("purged %d abandoned uploads%s", len(purged),
                         " (dry run)" if dry_run else "")
        except IndexUnavailable as error:
            log.error("upload purging failed: %s", error)
        except Exception:
            log.exception("upload purging failed")
        await asyncio.sleep(interval)


RESYNC_LOCK = "index-resync"
RESYNC_META = "index_resynced_at"


async def resync_index_forever(driver: StorageDriver, index: Index, interval: float,
                               sole_writer: bool = False) -> None:
    """Bring the index in line with the store (build it, on the first start on a store;
    pick up what another registry on the same store, or a hand, changed): once as the
    server starts, while it already serves, then every `interval` (0: never again). One
    worker at a time does it: each keeps the schedule, and one finding that another is at
    it, or did it recently, skips its turn. With `sole_writer` (storage.index.solewriter),
    a change made by something else is an error in the log: collections trust that none
    is made."""
    at_start = True
    while True:
        if not at_start:
            if interval <= 0:
                return
            await asyncio.sleep(interval)
        try:
            await _resync_once(driver, index, interval, at_start, sole_writer)
        except IndexUnavailable as error:  # the database is down: said in one line
            log.error("index re-sync failed: %s", error)
        except Exception:
            log.exception("index re-sync failed")
        at_start = False


async def _resync_once(driver: StorageDriver, index: Index, interval: float, at_start: bool,
                       sole_writer: bool) -> None:
    async with index.locks.hold_if_free(RESYNC_LOCK) as ours:
        if not ours:
            return
        complete = await index.is_complete()
        last = float(await index.get_meta(RESYNC_META) or 0)
        if complete and not at_start and time.time() - last < interval * 0.9:
            return
        if not complete:
            log.info("index: building it from the store in the background (listings read "
                     "the store until it is done)")
        started = time.monotonic()
        report = await synchronize(driver, index)
        await index.set_meta(RESYNC_META, str(time.time()))
    took = time.monotonic() - started
    if not complete:
        log.info("index: built, %d repositories (%.1fs)", report.repositories, took)
    elif (report.reindexed or report.removed) and sole_writer:
        log.error("index: %d repositories changed outside this registry (%s), but "
                  "storage.index.solewriter says nothing else writes the store: garbage "
                  "collection could delete what another writer's manifests need; unset it "
                  "while another registry shares the store", len(report.reindexed) +
                  len(report.removed), ", ".join([*report.reindexed, *report.removed][:5]))
    elif report.reindexed or report.removed:
        log.info("index: re-read %d repositories changed outside this registry "
                 "(%d gone from the store) (%.1fs)", len(report.reindexed),
                 len(report.removed), took)
    elif at_start:
        log.info("index: in line with the store, %d repositories (%.1fs)",
                 report.repositories, took)
