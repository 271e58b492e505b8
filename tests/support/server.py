"""Start registries (dockyard or distribution 2.8.2) as real subprocesses for tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer
    from tests.support.s3 import S3Bucket

IN_CI = bool(os.environ.get("CI"))
MIB = 1024 * 1024
INDEX_DIR = "dockyard"  # the index and lock file, beside the store's docker/ tree


def require_tool(name: str) -> str:
    """Path of an external tool; a missing tool skips locally but fails in CI."""
    import pytest

    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if value is None:
            merged.pop(key, None)  # None removes a key of the base config
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Storage:
    """Where a registry under test keeps its store: a directory, or an S3 bucket (then the
    local root holds only the index, and the objects live under a key prefix of the bucket
    named after that root, so a registry started again on the same root finds them)."""

    kind: str  # "filesystem" or "s3"
    bucket: S3Bucket | None = None
    # S3 only: blob GETs answered 307 to a presigned URL (dockyard's default), which the
    # registry's clients then follow; off, the registry streams the bytes itself.
    redirect: bool = False
    # With a PostgreSQL server, the index is a database there (one per store), not the
    # SQLite file beside the store.
    postgres: PostgresServer | None = None

    @property
    def id(self) -> str:
        suffix = "-redirect" if self.redirect else "-postgres" if self.postgres else ""
        return f"{self.kind}{suffix}"

    def database_config(self, root: Path) -> dict[str, Any]:
        """The `database` settings of a registry whose store is `root`: the index database
        named after the store, or nothing (the SQLite index)."""
        if self.postgres is None:
            return {}
        store = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        dsn = self.postgres.index_database(f"index_{store}")
        return {"database": {"enabled": True, "dsn": dsn}}

    def config(self, root: Path) -> dict[str, Any]:
        """The `storage` settings of a registry whose store is `root`."""
        if self.bucket is None:
            return {"filesystem": {"rootdirectory": str(root)}}
        bucket = self.bucket
        store = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        return {
            "s3": {"bucket": bucket.bucket, "region": bucket.region,
                   "regionendpoint": bucket.endpoint, "accesskey": bucket.access_key,
                   "secretkey": bucket.secret_key,
                   "forcepathstyle": bucket.service.path_style,
                   "secure": bucket.endpoint.startswith("https:"),
                   "rootdirectory": f"/{bucket.prefix}{store}", "chunksize": 5 * MIB,
                   "indexdirectory": str(root)},
            "redirect": {"disable": not self.redirect},
        }


    def files(self, root: Path) -> dict[str, str]:
        """See `RunningRegistry.store_files`."""
        if self.bucket is None:
            return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()
                                                                      ).hexdigest()
                    for path in sorted(root.rglob("*")) if path.is_file()
                    and path.relative_to(root).parts[0] != INDEX_DIR}
        from tests.support.s3 import botocore_client

        prefix = self.config(root)["s3"]["rootdirectory"].lstrip("/") + "/"
        pages = botocore_client(self.bucket.service).get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket.bucket, Prefix=prefix)
        return {item["Key"][len(prefix):]: f"{item['Size']} {item['ETag']}"
                for page in pages for item in page.get("Contents", [])}


FILESYSTEM = Storage("filesystem")


@dataclass
class RunningRegistry:
    kind: str
    url: str
    host: str
    root: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    storage: Storage = FILESYSTEM

    def client(self, **kwargs: Any) -> httpx.Client:
        # A blob GET redirected to the storage is followed, as pulling clients do.
        defaults = {"base_url": self.url, "timeout": 60,
                    "follow_redirects": self.storage.redirect}
        return httpx.Client(**{**defaults, **kwargs})

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15) -> str:
        """The log once it holds `text`: a line a worker writes after the change a client
        already sees may land a moment later."""
        deadline = time.monotonic() + timeout
        while text not in (logs := self.logs()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return logs

    def store_files(self) -> dict[str, str]:
        """Every file of the store by its path below the store's root (index files apart),
        with a fingerprint of its content: a hash on a filesystem, size and ETag on S3."""
        return self.storage.files(self.root)


def registry_command(kind: str, config_path: Path) -> list[str]:
    if kind == "dockyard":
        return [sys.executable, "-m", "dockyard", "serve", str(config_path)]
    if kind == "distribution":
        binary = require_tool("docker-registry")
        return [binary, "serve", str(config_path)]
    raise ValueError(kind)


def registry_environment(changes: Mapping[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **changes}
    return {name: value for name, value in merged.items() if value is not None}


@contextmanager
def run_registry(
    tmp: Path,
    kind: str = "dockyard",
    root: Path | None = None,
    config: dict[str, Any] | None = None,
    env: Mapping[str, str | None] | None = None,
    scheme: str = "http",
    storage: Storage = FILESYSTEM,
    port: int | None = None,
) -> Iterator[RunningRegistry]:
    """Run a registry on a loopback port (`port`, or a free one) until the block ends, its
    store on `storage` at `root` (on S3, `root` holds the index and names the store's key
    prefix); a variable whose value in `env` is None is removed from the registry's
    environment."""
    port = port or free_port()
    root = root or tmp / "store"
    root.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {**storage.config(root), "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
        **(storage.database_config(root) if kind == "dockyard" else {}),
    }
    settings = deep_merge(base, config or {})
    config_path = tmp / f"{kind}-{port}.yml"
    config_path.write_text(yaml.safe_dump(settings))
    log_path = tmp / f"{kind}-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        registry_command(kind, config_path),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=registry_environment(env or {}),
    )
    url = f"{scheme}://127.0.0.1:{port}"
    running = RunningRegistry(kind, url, f"127.0.0.1:{port}", root, config_path, process, log_path,
                              storage)
    try:
        wait_until_serving(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def wait_until_serving(running: RunningRegistry, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.kind} exited early:\n{running.logs()}")
        try:
            httpx.get(running.url + "/v2/", timeout=1, verify=False)
            return
        except httpx.TransportError as error:
            # With mutual TLS the probe has no client certificate: a refused handshake, or
            # (TLS 1.3, where the client finishes first) a connection closed unanswered,
            # still means the server is up.
            refused_handshake = isinstance(error, httpx.RemoteProtocolError | httpx.ReadError) \
                or any(word in str(error).lower() for word in ("ssl", "tls", "alert"))
            if running.url.startswith("https") and refused_handshake:
                return
            time.sleep(0.05)
    raise RuntimeError(f"{running.kind} did not start in {timeout}s:\n{running.logs()}")


# The two ways garbage collection finds its candidates: a full pass over the store (the
# default), or the index's record of what changed, where dockyard alone writes the store.
GC_SCOPES: dict[str, dict[str, Any]] = {
    "full": {},
    "changes": {"storage": {"index": {"solewriter": True}}},
}
