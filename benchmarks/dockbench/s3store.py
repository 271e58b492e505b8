"""The S3 server of an `--storage s3` run, and what the benchmark itself does on it.

Either a single-host Ceph radosgw started here (the test suite's `run_radosgw`: one mon, one
OSD, one radosgw on free loopback ports, thrown away at the end), or the S3 named by the
test suite's `DOCKYARD_TEST_S3_*` variables, where everything goes under a key prefix of
this run's own that is emptied at the end.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, BenchError, GiB, MiB, log
from .procs import _parents_and_times

EXTERNAL_ENV = "DOCKYARD_TEST_S3_ENDPOINT"
CEPH_TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
V2 = "docker/registry/v2"


@dataclass(frozen=True)
class S3Endpoint:
    """Where the run's objects go: endpoint, credentials, bucket and this run's key prefix."""

    name: str  # "radosgw" (started here) or "external"
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    path_style: bool
    bucket: str
    prefix: str  # no leading slash, ends with "/"
    ceph_conf: Path | None = None  # the radosgw cluster's config, to find its daemons

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https:")

    def root(self, name: str) -> str:
        """A server's `rootdirectory` (leading slash, no trailing one)."""
        return f"/{self.prefix}{name}"

    def blob_key(self, root: str, digest: str) -> str:
        algorithm, hexpart = digest.split(":", 1)
        return f"{root.lstrip('/')}/{V2}/blobs/{algorithm}/{hexpart[:2]}/{hexpart}/data"


def client(endpoint: S3Endpoint, connections: int = 10) -> Any:
    """A botocore S3 client (thread-safe) for the benchmark's own work on the store."""
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint.endpoint,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path" if endpoint.path_style else "virtual"},
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=connections,
            # radosgw and older S3s refuse the CRC32 trailers botocore >= 1.36 sends.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            read_timeout=900,
        ),
    )


def external_configured() -> bool:
    return bool(os.environ.get(EXTERNAL_ENV))


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def objectstore_for(wanted: str, run_bytes: int) -> str:
    """memstore when the run's objects fit in half the available memory."""
    if wanted != "auto":
        return wanted
    return "memstore" if run_bytes * 2 <= available_memory() else "bluestore"


def memstore_cap(run_bytes: int) -> int:
    """The OSD's memstore size: a limit, not an allocation. Deleted objects' data stays
    until radosgw's GC frees it (every 10 s), so there is room beyond the run's peak."""
    return max(2 * GiB, run_bytes + GiB, available_memory() // 2)


@contextlib.contextmanager
def s3_endpoint(workdir: Path, objectstore: str, run_bytes: int) -> Iterator[S3Endpoint]:
    """The S3 of this run, until the block ends (then a radosgw is stopped and thrown away;
    on an external S3 this run's prefix is emptied)."""
    run_prefix = f"dockbench-{uuid.uuid4().hex[:10]}/"
    if external_configured():
        endpoint = S3Endpoint(
            "external",
            os.environ[EXTERNAL_ENV],
            os.environ.get("DOCKYARD_TEST_S3_ACCESS_KEY", ""),
            os.environ.get("DOCKYARD_TEST_S3_SECRET_KEY", ""),
            os.environ.get("DOCKYARD_TEST_S3_REGION") or "us-east-1",
            os.environ.get("DOCKYARD_TEST_S3_PATH_STYLE", "true").lower()
            not in ("0", "false", "no"),
            os.environ.get("DOCKYARD_TEST_S3_BUCKET", ""),
            run_prefix,
        )
        if not (endpoint.access_key and endpoint.secret_key and endpoint.bucket):
            raise BenchError(f"{EXTERNAL_ENV} is set, so DOCKYARD_TEST_S3_ACCESS_KEY, "
                             "_SECRET_KEY and _BUCKET must be too")
        log(f"S3: external endpoint, bucket {endpoint.bucket}, prefix {run_prefix}")
        try:
            yield endpoint
        finally:
            log("S3: emptying this run's prefix")
            delete_prefix(endpoint, run_prefix)
        return
    # The test suite's single-host cluster, so the benchmark runs on what the tests run on.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.s3 import run_radosgw

    store = objectstore_for(objectstore, run_bytes)
    memstore = memstore_cap(run_bytes)
    detail = f", {memstore // MiB:,} MiB" if store == "memstore" else " (sparse file)"
    log(f"S3: starting a Ceph radosgw, OSD on {store}{detail}")
    try:
        cluster = run_radosgw(workdir / "radosgw", objectstore=store, memstore_bytes=memstore,
                              timeout=300)
        service = cluster.__enter__()
    except RuntimeError as exc:
        raise BenchError(f"radosgw did not start: {exc}") from exc
    try:
        endpoint = S3Endpoint("radosgw", service.endpoint, service.access_key,
                              service.secret_key, service.region, True, "dockbench",
                              run_prefix, service.ceph_conf)
        with s3_errors("creating the bucket"):
            client(endpoint).create_bucket(Bucket=endpoint.bucket)
        log(f"  radosgw answering at {endpoint.endpoint}, bucket {endpoint.bucket}")
        yield endpoint
    finally:
        cluster.__exit__(None, None, None)


def radosgw_cpu(endpoint: S3Endpoint) -> float:
    """CPU seconds of the Ceph daemons this run started (found by their config file)."""
    if endpoint.ceph_conf is None:
        return 0.0
    conf = str(endpoint.ceph_conf).encode()
    _, times = _parents_and_times()
    total = 0.0
    for pid, seconds in times.items():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if conf in handle.read().split(b"\0"):
                    total += seconds
        except OSError:
            continue
    return total


@contextlib.contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """botocore's errors as BenchError, so a scenario fails instead of the whole run."""
    try:
        yield
    except BenchError:
        raise
    except Exception as exc:  # botocore raises its own exception tree
        raise BenchError(f"{what}: {exc}") from exc


def list_keys(endpoint: S3Endpoint, prefix: str) -> list[str]:
    with s3_errors(f"listing {prefix}"):
        s3 = client(endpoint)
        return [str(item["Key"])
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=endpoint.bucket, Prefix=prefix)
                for item in page.get("Contents", [])]


def delete_keys(endpoint: S3Endpoint, keys: list[str], concurrency: int = 1) -> None:
    """DeleteObjects of 1,000 keys a request, `concurrency` requests at once."""
    batches = [keys[start:start + 1000] for start in range(0, len(keys), 1000)]
    with s3_errors("deleting objects"):
        s3 = client(endpoint, connections=max(concurrency, 1))

        def delete(batch: list[str]) -> None:
            s3.delete_objects(Bucket=endpoint.bucket, Delete={
                "Objects": [{"Key": key} for key in batch], "Quiet": True})

        with concurrent.futures.ThreadPoolExecutor(max(concurrency, 1)) as pool:
            for future in [pool.submit(delete, batch) for batch in batches]:
                future.result()


def delete_prefix(endpoint: S3Endpoint, prefix: str) -> None:
    """Every object (and unfinished multipart upload) under a prefix."""
    delete_keys(endpoint, list_keys(endpoint, prefix))
    with s3_errors(f"aborting uploads under {prefix}"):
        s3 = client(endpoint)
        uploads = s3.list_multipart_uploads(Bucket=endpoint.bucket, Prefix=prefix)
        for upload in uploads.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=endpoint.bucket, Key=upload["Key"],
                                      UploadId=upload["UploadId"])


def count_blobs(endpoint: S3Endpoint, root: str) -> int:
    """Blob data objects under a server's root (distribution's layout)."""
    prefix = f"{root.lstrip('/')}/{V2}/blobs/"
    return sum(1 for key in list_keys(endpoint, prefix) if key.endswith("/data"))


def count_layer_links(endpoint: S3Endpoint, root: str, repositories: set[str]) -> int:
    """Layer link objects under a server's root in the given repositories."""
    prefix = f"{root.lstrip('/')}/{V2}/repositories/"
    return sum(1 for key in list_keys(endpoint, prefix)
               if "/_layers/" in key and key[len(prefix):].split("/_layers/")[0]
               in repositories)


def object_digest(endpoint: S3Endpoint, key: str) -> tuple[int, str]:
    """Size and sha256 digest of an object, read from S3."""
    hasher = hashlib.sha256()
    size = 0
    with s3_errors(f"GET {key}"):
        body = client(endpoint).get_object(Bucket=endpoint.bucket, Key=key)["Body"]
        for piece in body.iter_chunks(4 * MiB):
            hasher.update(piece)
            size += len(piece)
    return size, "sha256:" + hasher.hexdigest()


def upload_tree(endpoint: S3Endpoint, source: Path, root: str, concurrency: int) -> int:
    """PUT every file under `source` to `<root>/<relative path>`, `concurrency` at once.
    The number of objects written."""
    files = [Path(directory) / name for directory, _, names in os.walk(source)
             for name in names]
    s3 = client(endpoint, connections=concurrency)
    base = root.strip("/")

    def put(path: Path) -> None:
        key = f"{base}/{path.relative_to(source).as_posix()}"
        s3.put_object(Bucket=endpoint.bucket, Key=key, Body=path.read_bytes())

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in concurrent.futures.as_completed([pool.submit(put, f) for f in files]):
            try:
                future.result()
            except Exception as exc:
                raise BenchError(f"writing the store into S3: {exc}") from exc
    return len(files)
