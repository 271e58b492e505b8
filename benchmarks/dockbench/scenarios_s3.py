"""Scenarios of an `--storage s3` run that differ from the filesystem ones: what the S3
server does alone (PUT, GET, server-side copy of the large blob), checking pushed bytes in
the bucket, and garbage collection of a large store written straight into S3."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .clients import Client, run_curl
from .common import DISTRIBUTION, DOCKYARD, BenchError, log
from .s3store import (
    V2,
    S3Endpoint,
    client,
    count_blobs,
    count_layer_links,
    delete_keys,
    object_digest,
    s3_errors,
    upload_tree,
)
from .scenarios_blobs import Blob
from .scenarios_gc import GCOutcome, ManifestLoad, delete_images, reported_deletions, run_collector
from .servers import Server
from .settings import Settings
from .storegen import GCStore

# ---- what the S3 server does alone


def s3_limits(endpoint: S3Endpoint, blob: Blob) -> dict[str, float]:
    """PUT of the blob file with curl to a presigned URL, GET of it back the same way, and a
    server-side CopyObject of it: MB/s each. The objects are deleted afterwards."""
    s3 = client(endpoint)
    key = f"{endpoint.prefix}limits/blob"
    copy = f"{endpoint.prefix}limits/copy"
    with s3_errors("presigning"):
        put_url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": endpoint.bucket, "Key": key}, ExpiresIn=3600
        )
        get_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": endpoint.bucket, "Key": key}, ExpiresIn=3600
        )
    try:
        started = time.perf_counter()
        stdout, _ = run_curl(["-X", "PUT", "-T", str(blob.path), "-H", "Expect:",
                              "-o", "/dev/null", "-w", "%{http_code}", put_url], 900)
        put = time.perf_counter() - started
        if stdout.strip() != "200":
            raise BenchError(f"S3 PUT: HTTP {stdout.strip()}")
        started = time.perf_counter()
        stdout, _ = run_curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                              get_url], 900)
        get = time.perf_counter() - started
        if stdout.split() != ["200", str(blob.size)]:
            raise BenchError(f"S3 GET: expected 200 and {blob.size} bytes, got {stdout!r}")
        started = time.perf_counter()
        s3.copy_object(Bucket=endpoint.bucket, Key=copy,
                       CopySource={"Bucket": endpoint.bucket, "Key": key})
        copied = time.perf_counter() - started
    except BenchError:
        raise
    except Exception as exc:  # botocore's errors
        raise BenchError(f"S3 limits: {exc}") from exc
    finally:
        delete_keys(endpoint, [key, copy])
    return {
        "limit_s3_put": blob.size / put / 1e6,
        "limit_s3_get": blob.size / get / 1e6,
        "limit_s3_copy": blob.size / copied / 1e6,
    }


def verify_stored_blob(server: Server, blob: Blob, scenario: str) -> None:
    """Untimed: the object the server stored under the blob's digest has the blob's bytes."""
    assert server.s3 is not None
    key = server.s3.endpoint.blob_key(server.s3.root, blob.digest)
    size, digest = object_digest(server.s3.endpoint, key)
    if (size, digest) != (blob.size, blob.digest):
        raise BenchError(f"verification after {scenario}: the object holds {size} bytes with "
                         f"digest {digest}, expected {blob.size} bytes with {blob.digest}")
    log(f"  {server.name:12} {scenario}: verified {size} bytes in S3, digest matches")


# ---- garbage collection on S3


@dataclass
class S3GC:
    """How dockyard collects on S3 in this run: its CLI (server stopped, and while it
    serves) where the CLI supports S3, else the admin API of the running server."""

    cli: bool

    @property
    def variants(self) -> tuple[tuple[str, str], ...]:
        if self.cli:
            return ((DISTRIBUTION, "offline"), (DOCKYARD, "offline"), (DOCKYARD, "online"))
        return ((DISTRIBUTION, "offline"), (DOCKYARD, "online"))

    def describe(self) -> str:
        if self.cli:
            return ("dockyard: `dockyard garbage-collect --grace-period 0` with the server "
                    "stopped, and while it serves")
        return ("dockyard: its CLI refuses S3 stores in this version, so the running "
                "server's own collector, started with `POST /admin/gc?graceperiod=0s` "
                "(http.admin.enabled) and followed on `GET /admin/gc` until it finishes")


def dockyard_cli_supports_s3(settings: Settings, probe: Server) -> bool:
    """A dry run of dockyard's CLI on an empty S3 root: does it collect on S3 at all?"""
    probe.write_config()
    argv = [part.replace("{config}", str(probe.config_path))
            for part in settings.dockyard_gc_cmd]
    argv.append("--dry-run")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                          env=probe.environment())
    if done.returncode != 0:
        log(f"  dockyard garbage-collect on S3: exit {done.returncode}: "
            f"{done.stderr.strip()[-300:]}")
    return done.returncode == 0


def write_store(endpoint: S3Endpoint, store: GCStore, server: Server, concurrency: int
                ) -> tuple[int, float]:
    """Untimed: the template store's objects PUT under the server's root. (objects, s)."""
    assert server.s3 is not None
    started = time.perf_counter()
    count = upload_tree(endpoint, store.root, server.s3.root, concurrency)
    return count, time.perf_counter() - started


def prepare_s3_variant(server: Server, store: GCStore, concurrency: int
                       ) -> tuple[float, int, float]:
    """Untimed: the store written into the server's root, the server started on it, half
    the images deleted. (start-up seconds, objects written, seconds writing them)."""
    assert server.s3 is not None
    shutil.rmtree(server.workdir, ignore_errors=True)
    count, seconds = write_store(server.s3.endpoint, store, server, concurrency)
    server.start()
    start_seconds = server.start_seconds
    server.wait_index_built()  # dockyard: its background index build is done first
    delete_images(server, store)
    return start_seconds, count, seconds


@dataclass
class GCPhases:
    """When dockyard's collector, followed on GET /admin/gc, first and last reported
    progress sweeping blobs (seconds from the POST): what came before (index sync, listing
    the blobs), the sweep, and what came after (uploads, empty repositories)."""

    first_sweep: float | None = None
    last_sweep: float | None = None

    def split(self, total: float) -> dict[str, float]:
        if self.first_sweep is None or self.last_sweep is None:
            return {}
        return {"gc_before_sweep_s": self.first_sweep,
                "gc_sweep_s": self.last_sweep - self.first_sweep,
                "gc_after_sweep_s": total - self.last_sweep}


def admin_gc(server: Server, phases: GCPhases, timeout: float = 3600.0) -> tuple[float, str]:
    """Start dockyard's online collector over its admin API and wait until it finishes."""
    client = Client(server.port, timeout=60)
    try:
        started = time.perf_counter()
        got = client.request("POST", "/admin/gc?graceperiod=0s", body=b"")
        if got.status != 202:
            raise BenchError(f"POST /admin/gc: HTTP {got.status} {got.body[:300]!r}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = client.request("GET", "/admin/gc")
            state = json.loads(status.body or b"{}")
            progress = state.get("progress") or {}
            if state.get("state") == "running" and progress.get("phase") == "blobs":
                now = time.perf_counter() - started
                if phases.first_sweep is None:
                    phases.first_sweep = now
                phases.last_sweep = now
            if state.get("state") == "finished":
                return time.perf_counter() - started, json.dumps(state.get("report", {}))
            if state.get("state") == "failed":
                raise BenchError(f"online GC failed: {state.get('error')}")
            time.sleep(0.05)
        raise BenchError(f"online GC did not finish in {timeout:.0f}s")
    finally:
        client.close()


def collect_s3(server: Server, kind: str, mode: str, settings: Settings, store: GCStore,
               gc: S3GC, phases: GCPhases) -> GCOutcome:
    """The timed part: the collector run (server stopped, or serving a light load)."""
    assert server.s3 is not None
    endpoint, root = server.s3.endpoint, server.s3.root
    command = settings.distribution_gc_cmd if kind == DISTRIBUTION else settings.dockyard_gc_cmd
    argv = [part.replace("{config}", str(server.config_path)) for part in command]
    before = count_blobs(endpoint, root)
    if mode == "offline":
        server.stop()
        seconds, output = run_collector(argv, server.environment())
        outcome = GCOutcome(seconds, before, count_blobs(endpoint, root), None)
    else:
        kept = [image for image in store.images if not image.deleted]
        with ManifestLoad(server, kept) as load:
            time.sleep(0.5)  # the load is under way before the collector starts
            if gc.cli:
                seconds, output = run_collector(argv, server.environment())
            else:
                seconds, output = admin_gc(server, phases)
            time.sleep(0.5)
        outcome = GCOutcome(seconds, before, count_blobs(endpoint, root), None)
        outcome.load_ok, outcome.load_failed = load.ok, load.failed
    outcome.reported = reported_deletions(kind, output)
    outcome.links_left = count_layer_links(
        endpoint, root, {image.repo for image in store.images if image.deleted})
    return outcome


def deletion_floor(endpoint: S3Endpoint, store: GCStore, concurrency: int, root: str,
                   links: bool = False) -> float:
    """Seconds that deleting just the blob objects every collector must delete takes with
    DeleteObjects (1,000 keys a request, no listing, no marking): a lower bound for any
    collector on this S3 server. With `links`, the deleted images' layer links too (what a
    collector leaving no dangling link deletes besides). The objects are PUT first,
    untimed."""
    doomed = sorted(store.doomed_blobs())
    s3 = client(endpoint, connections=concurrency)
    template = store.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    objects = {endpoint.blob_key(root, digest): (template / digest[7:9] / digest[7:] / "data")
               .read_bytes() for digest in doomed}
    if links:
        base = f"{root.lstrip('/')}/{V2}/repositories"
        objects.update({f"{base}/{repo}/_layers/sha256/{digest[7:]}/link": digest.encode()
                        for repo, digest in store.doomed_links()})
    keys = sorted(objects)

    def put(key: str) -> None:
        s3.put_object(Bucket=endpoint.bucket, Key=key, Body=objects[key])

    try:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(put, key) for key in keys]:
                future.result()
        started = time.perf_counter()
        delete_keys(endpoint, keys, concurrency)
        seconds = time.perf_counter() - started
    except Exception as exc:  # botocore's errors
        raise BenchError(f"deletion floor: {exc}") from exc
    left = count_blobs(endpoint, root)
    if left:
        raise BenchError(f"DeleteObjects left {left} of {len(keys)} blob objects")
    return seconds


def gc_workdir_s3(workdir: Path, kind: str, mode: str, round_no: int) -> Path:
    return workdir / f"gc-s3-{kind}-{mode}-{round_no}"
