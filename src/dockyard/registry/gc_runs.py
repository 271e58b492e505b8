"""Garbage collection runs inside the server: scheduled or asked for over HTTP, one at a time
across every worker (a lease in the index), with progress and the last result readable from
any worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any

from dockyard.index.base import Index, IndexWrite
from dockyard.metrics.own import count_gc_run
from dockyard.registry.errors import ReadOnly
from dockyard.registry.gc import (
    DEFAULT_GRACE_PERIOD,
    GCOptions,
    Progress,
    collect_garbage,
    last_full_pass,
)
from dockyard.registry.read_only import ReadOnlyMode
from dockyard.storage import StorageDriver

log = logging.getLogger("dockyard.gc")
STATUS_KEY = "gc_status"
LEASE_KEY = "gc_lease"
# A run renews its lease while it works; a lease left by a dead process expires.
LEASE_SECONDS = 120.0
PROGRESS_EVERY = 0.5
READ_ONLY_MESSAGE = ("the registry is in read-only maintenance mode: garbage collection may "
                     "only be a dry run")
# A run that read-only mode finds under way stops between two batches of deletes; what
# comes after the sweep (empty repositories, abandoned uploads) waits for the next run.
STOPPED_MESSAGE = "stopped: read-only maintenance mode was switched on"


HISTORY_KEY = "gc_history"
HISTORY_LENGTH = 20


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    report = status.get("report") or {}
    return {
        "state": status.get("state"), "trigger": status.get("trigger"),
        "started": status.get("started"), "finished": status.get("finished"),
        "dry_run": bool((status.get("options") or {}).get("dry_run")),
        "bytes_freed": report.get("bytes_freed", 0),
        "blobs_deleted": len(report.get("blobs_deleted", [])),
        "manifests_deleted": len(report.get("manifests_deleted", [])),
        "error": status.get("error"),
    }


class GCAlreadyRunning(Exception):
    """Another run (in this or another worker, or `dockyard gc`) holds the lease."""


def _lease_alive(value: str) -> bool:
    """A lease counts until it expires, or until its holder (on this host) is gone."""
    token, _, expires = value.partition("|")
    if float(expires or 0) <= time.time():
        return False
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GCRuns:
    def __init__(self, driver: StorageDriver, index: Index,
                 read_only: ReadOnlyMode | None = None, sole_writer: bool = False,
                 grace_period: float = DEFAULT_GRACE_PERIOD) -> None:
        self.driver = driver
        self.index = index
        # Read-only maintenance mode (the server's): the store must not change, so only dry
        # runs. None: `dockyard garbage-collect`, distribution's way to collect while the
        # registry is read-only.
        self.read_only = read_only
        # storage.index.solewriter (see GCOptions)
        self.sole_writer = sole_writer
        # storage.gc.graceperiod, for runs whose starter names none
        self.grace_period = grace_period
        self._progress: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()

    async def status(self) -> dict[str, Any]:
        text = await self.index.get_meta(STATUS_KEY)
        status: dict[str, Any] = json.loads(text) if text else {"state": "idle"}
        return status

    async def _begin(self, options: GCOptions, trigger: str) -> tuple[str, dict[str, Any]]:
        """Take the lease and publish the run as running, in one transaction, so that
        whoever is told it started (a 202 in any instance) sees it hold the lease;
        GCAlreadyRunning if another run holds it, ReadOnly in read-only mode unless a dry
        run."""
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        status: dict[str, Any] = {"state": "running", "trigger": trigger, "started": _now(),
                                  "options": asdict(options), "progress": None}
        async with self.index.writing() as db:
            # Checked under the transaction: a switch to read-only commits either
            # before it (no run starts) or after it (and the run shows as started).
            if self.read_only is not None and not options.dry_run \
                    and await self.read_only.is_on_in(db):
                raise ReadOnly(READ_ONLY_MESSAGE)
            lease = await db.get_meta(LEASE_KEY)
            if lease is not None and _lease_alive(lease):
                raise GCAlreadyRunning()
            await db.set_meta(STATUS_KEY, json.dumps(status))
            await self._write_lease(db, token)
        return token, status

    @staticmethod
    async def _write_lease(db: IndexWrite, token: str) -> None:
        await db.set_meta(LEASE_KEY, f"{token}|{time.time() + LEASE_SECONDS}")

    async def _finish(self, status: dict[str, Any], token: str) -> None:
        """The final status and the lease's release in one transaction: a run reported
        finished no longer holds the lease."""
        async with self.index.writing() as db:
            await db.set_meta(STATUS_KEY, json.dumps(status))
            await db.delete_meta(LEASE_KEY, f"{token}|")
            history = json.loads(await db.get_meta(HISTORY_KEY) or "[]")
            history.insert(0, _summary(status))
            await db.set_meta(HISTORY_KEY, json.dumps(history[:HISTORY_LENGTH]))

    async def history(self) -> list[dict[str, Any]]:
        """The last collections, newest first: when, how started, and what each freed."""
        runs: list[dict[str, Any]] = json.loads(await self.index.get_meta(HISTORY_KEY) or "[]")
        return runs

    async def _save(self, status: dict[str, Any], token: str, options: GCOptions) -> bool:
        """Publish progress and renew the lease; whether the run must stop (read-only
        maintenance mode was switched on since it started)."""
        async with self.index.writing() as db:
            await db.set_meta(STATUS_KEY, json.dumps(status))
            await self._write_lease(db, token)
            return self.read_only is not None and not options.dry_run \
                and await self.read_only.is_on_in(db)

    async def run(self, options: GCOptions, trigger: str,
                  progress: Progress | None = None) -> dict[str, Any]:
        """Run one collection now; GCAlreadyRunning if another holds the lease, ReadOnly
        if it would delete from a read-only store."""
        token, status = await self._begin(options, trigger)
        return await self._work(options, trigger, token, status, progress)

    async def _work(self, options: GCOptions, trigger: str, token: str,
                    status: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        """Collect under the lease `_begin` took, then report and release it."""
        self._progress = None
        stopping = False

        def on_progress(phase: str, done: int, total: int) -> None:
            self._progress = {"phase": phase, "done": done, "total": total}
            if progress is not None:
                progress(phase, done, total)
            # Between two batches of deletes, each committed: a clean place to stop.
            if stopping:
                raise ReadOnly(STOPPED_MESSAGE)

        async def publish() -> None:
            nonlocal stopping
            while True:
                await asyncio.sleep(PROGRESS_EVERY)
                status["progress"] = self._progress
                stopping = await self._save(status, token, options) or stopping

        try:
            publisher = asyncio.create_task(publish())
            try:
                report = await collect_garbage(self.driver, self.index, options, on_progress)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher
            status.update(state="finished", finished=_now(), progress=self._progress,
                          report=report.as_dict())
            log.info("garbage collection (%s) deleted %d blobs, %d manifests, %d bytes",
                     trigger, len(report.blobs_deleted), len(report.manifests_deleted),
                     report.bytes_freed)
        except ReadOnly as error:
            status.update(state="failed", finished=_now(), progress=self._progress,
                          error=str(error))
            log.warning("garbage collection (%s) %s", trigger, error)
        except Exception as error:
            status.update(state="failed", finished=_now(), error=str(error))
            log.exception("garbage collection (%s) failed", trigger)
        finally:
            await self._finish(status, token)
            count_gc_run(status)
        return status

    async def start(self, options: GCOptions, trigger: str) -> asyncio.Task[dict[str, Any]]:
        """Take the lease, then run in the background; GCAlreadyRunning if another run
        holds the lease, ReadOnly if it would delete from a read-only store (both before
        anything starts)."""
        token, status = await self._begin(options, trigger)
        task = asyncio.create_task(self._work(options, trigger, token, status, None))
        self._tasks.add(task)  # keep a reference until it ends
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_every(self, interval: float, options: GCOptions,
                        full_pass_interval: float | None = None,
                        before: Callable[[], Awaitable[object]] | None = None) -> None:
        """Collect every `interval`; where collections look at what changed alone, a full
        pass once `full_pass_interval` has gone by since the last one. `before` runs first
        each time (the retention rules' tag removals)."""
        while True:
            await asyncio.sleep(interval)
            if before is not None and not options.dry_run:
                try:
                    await before()
                except ReadOnly:
                    pass  # said below, as the collection is refused too
                except Exception:
                    log.exception("retention rules could not be applied; collecting anyway")
            full = False
            if options.sole_writer and full_pass_interval is not None:
                last = await last_full_pass(self.index)
                full = last is None or time.time() - last >= full_pass_interval
            try:
                await self.run(replace(options, full=full), "schedule")
            except GCAlreadyRunning:
                pass
            except ReadOnly:
                # The schedule keeps going: collections resume once writes are back on.
                log.info("scheduled garbage collection skipped: the registry is in "
                         "read-only maintenance mode")
