"""Real S3 endpoints for the tests: Ceph radosgw, moto's server, or an external S3.

- ``radosgw``: a single-host Ceph cluster (one mon, one OSD on memstore, one radosgw, auth
  none, pool size 1) in a temporary directory on free loopback ports, started once per test
  session (about 15 s) with an S3 user of its own.
- ``moto``: moto's S3 server as a subprocess, ready in about a second.
- ``external``: set ``DOCKYARD_TEST_S3_ENDPOINT``, ``_ACCESS_KEY``, ``_SECRET_KEY``,
  ``_BUCKET`` and optionally ``_REGION`` (default ``us-east-1``) and ``_PATH_STYLE``
  (default ``true``) to run the same tests against AWS, MinIO or any other S3; then only
  that endpoint is used, and each test works under a key prefix of its own in that bucket.

The ``s3_bucket`` fixture gives each test an empty bucket (a fresh one on radosgw and moto)
and a key prefix of its own, on every endpoint in turn.  With ``CI`` set a missing Ceph or
moto fails the tests instead of skipping them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import IN_CI, free_port, require_tool

EXTERNAL_ENV = "DOCKYARD_TEST_S3_ENDPOINT"
EXTERNAL_CONFIGURED = bool(os.environ.get(EXTERNAL_ENV))
# The endpoints every S3 test runs against, in this order.
S3_BACKENDS: tuple[str, ...] = ("external",) if EXTERNAL_CONFIGURED else ("radosgw", "moto")
CEPH_TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")


@dataclass(frozen=True)
class S3Service:
    """An S3 endpoint and the credentials of a user allowed to create buckets there."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    path_style: bool = True
    bucket: str | None = None  # the one bucket to use, where buckets cannot be made
    ceph_conf: Path | None = None  # radosgw's cluster, for radosgw-admin


@dataclass(frozen=True)
class S3Bucket:
    """What a test needs to use S3: endpoint, credentials, an empty bucket, its own prefix."""

    service: S3Service
    bucket: str
    prefix: str  # no leading slash, ends with "/"

    @property
    def endpoint(self) -> str:
        return self.service.endpoint

    @property
    def access_key(self) -> str:
        return self.service.access_key

    @property
    def secret_key(self) -> str:
        return self.service.secret_key

    @property
    def region(self) -> str:
        return self.service.region


def botocore_client(service: S3Service) -> Any:
    """A synchronous botocore S3 client for arranging and checking tests."""
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=service.endpoint,
        region_name=service.region,
        aws_access_key_id=service.access_key,
        aws_secret_access_key=service.secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path" if service.path_style else "virtual"},
            retries={"max_attempts": 3, "mode": "standard"},
            # Both ends checksum nothing extra: radosgw and older S3s refuse what they
            # do not know (botocore >= 1.36 sends CRC32 trailers by default).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def empty_bucket(client: Any, bucket: str, prefix: str = "") -> None:
    """Delete every object (and abandoned multipart upload) under a prefix."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        client.abort_multipart_upload(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )


def _die_with_parent() -> None:
    # A daemon must not outlive a test run that is killed outright; SIGKILL, as radosgw
    # ignores SIGTERM once its mon is gone.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_daemon(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )


def stop_daemon(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until(
    ready: Callable[[], bool],
    what: str,
    processes: list[subprocess.Popen[bytes]],
    logs: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{what}: {process.args!r} exited ({process.returncode}); logs in {logs}"
                )
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready in {timeout:.0f}s; logs in {logs}")


def answers_http(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


CEPH_CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
# No cephx: radosgw and radosgw-admin must then accept crc mode from the mon, or they wait
# for a secure session that never comes (EACCES, and radosgw hangs at start).
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc secure
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = {run}
admin socket = {run}/$name.asok
pid file = {run}/$name.pid
log file = {logs}/$name.log
[mon]
mon data = {root}/mon.$id
mon data avail crit = 1
[osd]
osd data = {root}/osd.$id
osd objectstore = {objectstore}
memstore device bytes = {memstore_bytes}
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mount = false
bdev enable discard = false
osd memory target = 1073741824
[client.rgw.a]
# Without tcp_nodelay every small GET or LIST waits 40-50 ms for a delayed ACK.
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {root}/rgw
rgw dns name = localhost
rgw thread pool size = 64
# Free deleted objects' data within seconds, not hours: memstore holds it in memory.
rgw gc obj min wait = 0
rgw gc processor period = 10
"""


@contextmanager
def run_radosgw(
    tmp: Path,
    objectstore: str = "memstore",
    memstore_bytes: int = 2 << 30,
    timeout: float = 120,
) -> Iterator[S3Service]:
    """A single-host Ceph cluster with radosgw on a free loopback port, until the block ends.

    ``memstore`` keeps objects in the OSD's memory (up to ``memstore_bytes``); ``bluestore``
    keeps them in a sparse file under ``tmp`` (slower to start, little memory).
    """
    for tool in CEPH_TOOLS:
        require_tool(tool)
    root = tmp / "ceph"
    logs = root / "log"
    # Admin sockets are unix sockets, whose paths the kernel limits to 108 bytes.
    run = Path(tempfile.mkdtemp(prefix="dy-ceph-"))
    for directory in (logs, root / "mon.a", root / "osd.0", root / "rgw"):
        directory.mkdir(parents=True, exist_ok=True)
    mon_port, rgw_port = free_port(), free_port()
    fsid = str(uuid.uuid4())
    conf = root / "ceph.conf"
    conf.write_text(
        CEPH_CONF.format(
            fsid=fsid,
            mon_port=mon_port,
            rgw_port=rgw_port,
            root=root,
            run=run,
            logs=logs,
            objectstore=objectstore,
            memstore_bytes=memstore_bytes,
        )
    )
    ceph = ["-c", str(conf)]
    started: list[subprocess.Popen[bytes]] = []

    def setup(*command: str) -> str:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr}; logs in {logs}")
        return result.stdout

    try:
        monmap = str(root / "monmap")
        setup("monmaptool", "--create", "--add", "a", f"v2:127.0.0.1:{mon_port}",
              "--fsid", fsid, monmap)
        setup("ceph-mon", *ceph, "--mkfs", "-i", "a", "--monmap", monmap)
        started.append(start_daemon(["ceph-mon", *ceph, "-f", "-i", "a"], logs / "mon.out"))
        osd_uuid = str(uuid.uuid4())
        osd_id = setup("ceph", *ceph, "osd", "new", osd_uuid).strip()
        setup("ceph-osd", *ceph, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        started.append(start_daemon(["ceph-osd", *ceph, "-f", "-i", osd_id], logs / "osd.out"))
        # radosgw waits for the OSD by itself while it creates its pools.
        radosgw = ["radosgw", *ceph, "-f", "-n", "client.rgw.a"]
        started.append(start_daemon(radosgw, logs / "rgw.out"))
        access_key, secret_key = uuid.uuid4().hex[:20].upper(), uuid.uuid4().hex
        setup("radosgw-admin", *ceph, "user", "create", "--uid=dockyard-tests",
              "--display-name=dockyard tests", f"--access-key={access_key}",
              f"--secret-key={secret_key}")
        endpoint = f"http://127.0.0.1:{rgw_port}"
        _wait_until(lambda: answers_http(endpoint), "radosgw", started, logs, timeout)
        yield S3Service("radosgw", endpoint, access_key, secret_key, ceph_conf=conf)
    finally:
        # The cluster is thrown away: stop every daemon at once rather than in turn.
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            stop_daemon(process)
        shutil.rmtree(run, ignore_errors=True)


@contextmanager
def run_moto(tmp: Path, timeout: float = 60) -> Iterator[S3Service]:
    """moto's S3 server on a free loopback port, until the block ends."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("moto[server] is required in CI but is not installed")
        pytest.skip("moto[server] is not installed")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "moto.log"
    process = start_daemon(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: answers_http(endpoint), "moto", [process], log, timeout)
        yield S3Service("moto", endpoint, "moto-access-key", "moto-secret-key")
    finally:
        stop_daemon(process)


def external_service() -> S3Service:
    """The S3 named by the ``DOCKYARD_TEST_S3_*`` variables."""
    values = {}
    for name in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "BUCKET"):
        value = os.environ.get(f"DOCKYARD_TEST_S3_{name}")
        if not value:
            pytest.fail(f"{EXTERNAL_ENV} is set, so DOCKYARD_TEST_S3_{name} must be too")
        values[name] = value
    path_style = os.environ.get("DOCKYARD_TEST_S3_PATH_STYLE", "true").lower()
    return S3Service(
        "external",
        values["ENDPOINT"],
        values["ACCESS_KEY"],
        values["SECRET_KEY"],
        region=os.environ.get("DOCKYARD_TEST_S3_REGION") or "us-east-1",
        path_style=path_style not in ("0", "false", "no"),
        bucket=values["BUCKET"],
    )


@pytest.fixture(scope="session")
def radosgw_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    with run_radosgw(tmp_path_factory.mktemp("radosgw")) as service:
        yield service


@pytest.fixture(scope="session")
def moto_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    with run_moto(tmp_path_factory.mktemp("moto")) as service:
        yield service


@pytest.fixture(scope="session")
def external_service_fixture() -> S3Service:
    return external_service()


_SERVICE_FIXTURES = {
    "radosgw": "radosgw_service",
    "moto": "moto_service",
    "external": "external_service_fixture",
}


@contextmanager
def bucket_on(service: S3Service) -> Iterator[S3Bucket]:
    """An empty bucket (a fresh one where buckets can be made) and a key prefix of its own,
    emptied and removed at the end of the block."""
    client = botocore_client(service)
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    with ExitStack() as cleanup:
        if service.bucket is not None:
            bucket = service.bucket  # shared: clean up only this test's prefix
            cleanup.callback(empty_bucket, client, bucket, prefix)
        else:
            bucket = f"dockyard-{uuid.uuid4().hex[:16]}"
            client.create_bucket(Bucket=bucket)
            cleanup.callback(client.delete_bucket, Bucket=bucket)
            cleanup.callback(empty_bucket, client, bucket)
        yield S3Bucket(replace(service, bucket=bucket), bucket, prefix)


def service_of(request: pytest.FixtureRequest, backend: str) -> S3Service:
    """The session's endpoint named `backend` (one of S3_BACKENDS), started if need be."""
    service: S3Service = request.getfixturevalue(_SERVICE_FIXTURES[backend])
    return service


# Scenario tests of a minute (distribution beside dockyard, collections during pushes) run on
# one endpoint: radosgw, the real S3 (or the external one). moto, the second implementation,
# is for the driver's and the API's tests, which are where S3s differ.
PRIMARY_S3_BACKEND = S3_BACKENDS[0]
on_primary_s3 = pytest.mark.parametrize("s3_bucket", [PRIMARY_S3_BACKEND], indirect=True)


@pytest.fixture(params=S3_BACKENDS)
def s3_bucket(request: pytest.FixtureRequest) -> Iterator[S3Bucket]:
    """An empty bucket and a key prefix of this test's own, on each S3 endpoint in turn."""
    with bucket_on(service_of(request, request.param)) as bucket:
        yield bucket
