"""Garbage collection of a store where half the images were deleted.

Each variant gets a fresh copy of the same store: the server starts on it (dockyard indexes
it), half the manifests are deleted through the API, and then the collector is timed:
distribution's `garbage-collect` and dockyard's with the server stopped, and dockyard's while
the server runs and serves a steady light load of manifest GETs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .aclient import AsyncConnection, run_pool
from .clients import Client
from .common import DISTRIBUTION, DOCKYARD, MANIFEST_ACCEPT, BenchError, count_blobs
from .servers import Server
from .settings import Settings
from .storegen import GCImage, GCStore, copy_store

# "changes": dockyard serving, its collector told it is the store's sole writer
# (storage.index.solewriter), so it looks at the index's record of what changed alone.
VARIANTS = ((DISTRIBUTION, "offline"), (DOCKYARD, "offline"), (DOCKYARD, "online"),
            (DOCKYARD, "changes"))
SOLE_WRITER = {"REGISTRY_STORAGE_INDEX_SOLEWRITER": "true"}


def delete_images(server: Server, store: GCStore) -> None:
    """DELETE the manifests of the images marked for deletion, 8 requests at once."""

    async def work(conn: AsyncConnection, image: GCImage) -> None:
        status, _, body = await conn.request(
            "DELETE", f"/v2/{image.repo}/manifests/{image.manifest}"
        )
        if status != 202:
            raise BenchError(f"DELETE {image.repo}@{image.manifest}: HTTP {status} {body[:200]!r}")

    doomed = [image for image in store.images if image.deleted]
    asyncio.run(run_pool(server.port, 8, doomed, work))


class ManifestLoad:
    """A steady light load: `threads` clients GET kept manifests by tag, pausing 10 ms."""

    def __init__(self, server: Server, images: list[GCImage], threads: int = 2) -> None:
        self.server = server
        self.images = images
        self.stop_event = threading.Event()
        self.ok = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, offset: int) -> None:
        client = Client(self.server.port, timeout=30)
        index = offset
        try:
            while not self.stop_event.is_set():
                image = self.images[index % len(self.images)]
                index += len(self.threads)
                try:
                    got = client.request(
                        "GET",
                        f"/v2/{image.repo}/manifests/{image.tag}",
                        headers={"Accept": MANIFEST_ACCEPT},
                    )
                    good = got.status == 200
                except BenchError:
                    good = False
                    client.close()
                    client = Client(self.server.port, timeout=30)
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed += 1
                self.stop_event.wait(0.01)
        finally:
            client.close()

    def __enter__(self) -> ManifestLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=60)


def spot_check(server: Server, store: GCStore, count: int = 5) -> str:
    """Kept images come back whole (every blob hashed); deleted ones answer 404."""
    kept = [image for image in store.images if not image.deleted]
    gone = [image for image in store.images if image.deleted]
    step = max(1, len(kept) // count)
    client = Client(server.port, timeout=60)
    try:
        for image in kept[::step][:count]:
            target = f"/v2/{image.repo}/manifests/{image.tag}"
            got = client.request("GET", target, headers={"Accept": MANIFEST_ACCEPT})
            if got.status != 200 or "sha256:" + hashlib.sha256(got.body).hexdigest() != (
                image.manifest
            ):
                raise BenchError(f"kept image {image.repo}: manifest HTTP {got.status}")
            for digest in image.blobs:
                blob = client.request("GET", f"/v2/{image.repo}/blobs/{digest}")
                if blob.status != 200 or "sha256:" + hashlib.sha256(blob.body).hexdigest() != (
                    digest
                ):
                    raise BenchError(f"kept image {image.repo}: blob {digest} HTTP {blob.status}")
        for image in gone[:3]:
            got = client.request("GET", f"/v2/{image.repo}/manifests/{image.manifest}")
            if got.status != 404:
                raise BenchError(f"deleted image {image.repo}: manifest HTTP {got.status}")
    finally:
        client.close()
    return f"{min(count, len(kept))} kept images whole, 3 deleted ones answer 404"


def reported_deletions(kind: str, output: str) -> int | None:
    """How many blobs the collector says it deleted."""
    if kind == DOCKYARD:
        start = output.find("{")
        if start < 0:
            return None
        try:
            return len(json.loads(output[start:]).get("blobs_deleted", []))
        except ValueError:
            return None
    found = re.search(r"(\d+) blobs and (\d+) manifests eligible for deletion", output)
    return int(found.group(1)) if found else None


@dataclass
class GCOutcome:
    seconds: float
    before: int
    after: int
    reported: int | None
    load_ok: int = 0
    load_failed: int = 0
    start_seconds: float = 0.0
    check: str = ""
    links_left: int | None = None  # layer links of the deleted images left in the store


def run_collector(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False,
                              env=env)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{argv[0]} garbage-collect did not finish in an hour") from exc
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"garbage-collect exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed, done.stdout + "\n" + done.stderr


def prepare_variant(server: Server, store: GCStore) -> float:
    """Untimed: copy the store, start the server on it, delete half the images."""
    shutil.rmtree(server.workdir, ignore_errors=True)
    copy_store(store.root, server.root)
    server.start()
    start_seconds = server.start_seconds
    server.wait_index_built()  # dockyard: its background index build is done first
    delete_images(server, store)
    return start_seconds


def collect(
    server: Server, kind: str, mode: str, settings: Settings, store: GCStore
) -> GCOutcome:
    """The timed part: run the collector (server stopped or running), then check the store."""
    command = settings.distribution_gc_cmd if kind == DISTRIBUTION else settings.dockyard_gc_cmd
    argv = [part.replace("{config}", str(server.config_path)) for part in command]
    before = count_blobs(server.root)
    if mode == "offline":
        server.stop()
        seconds, output = run_collector(argv)
        outcome = GCOutcome(seconds, before, count_blobs(server.root), None)
    else:
        kept = [image for image in store.images if not image.deleted]
        env = {**os.environ, **SOLE_WRITER} if mode == "changes" else None
        with ManifestLoad(server, kept) as load:
            time.sleep(0.5)  # the load is under way before the collector starts
            seconds, output = run_collector(argv, env)
            time.sleep(0.5)
        outcome = GCOutcome(seconds, before, count_blobs(server.root), None)
        outcome.load_ok, outcome.load_failed = load.ok, load.failed
    outcome.reported = reported_deletions(kind, output)
    return outcome


def verify_variant(server: Server, store: GCStore, outcome: GCOutcome) -> None:
    """Untimed: restart a stopped server and spot-check the images; stop it."""
    if not server.alive():
        server.start()
    outcome.check = spot_check(server, store)
    server.stop()
    deleted = outcome.before - outcome.after
    if deleted != store.expected_deleted:
        raise BenchError(
            f"deleted {deleted} blobs (on disk), expected {store.expected_deleted}"
        )


FLOOR_PROCESSES = 8


def deletion_floor(store: GCStore, workdir: Path) -> float:
    """Seconds that deleting just the blob directories every collector must delete takes,
    with `rm -rf` spread over FLOOR_PROCESSES processes at once (no marking, no collector
    start-up): a lower bound for any collector on this disk. The copy is made untimed."""
    target = workdir / "gc-floor"
    shutil.rmtree(target, ignore_errors=True)
    copy_store(store.root, target)
    blobs = target / "docker" / "registry" / "v2" / "blobs" / "sha256"
    paths = [str(blobs / digest[7:9] / digest[7:]) for digest in sorted(store.doomed_blobs())]
    subprocess.run(["sync"], check=False)
    started = time.perf_counter()
    running = [subprocess.Popen(["rm", "-rf", "--", *paths[start::FLOOR_PROCESSES]])
               for start in range(FLOOR_PROCESSES)]
    codes = [process.wait() for process in running]
    seconds = time.perf_counter() - started
    left = sum(1 for path in paths if Path(path).exists())
    shutil.rmtree(target, ignore_errors=True)
    if any(codes) or left:
        raise BenchError(f"rm -rf exit codes {codes}, {left} blob directories left")
    return seconds


def gc_workdir(workdir: Path, kind: str, mode: str) -> Path:
    return workdir / f"gc-{kind}-{mode}"
