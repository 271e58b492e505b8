"""Starting and stopping the registries (and nginx) on free loopback ports."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .common import HOST, REPO_ROOT, BenchError, blob_dir
from .procs import memory_kib, process_tree_cpu, tree_pids

if TYPE_CHECKING:
    from .s3store import S3Endpoint
    from .tokens import TokenAuth


@dataclass(frozen=True)
class S3Storage:
    """A server's store on S3: its root in the run's bucket, blob redirects on or off."""

    endpoint: S3Endpoint
    root: str  # storage.s3.rootdirectory
    redirect_disabled: bool = False
    admin: bool = False  # dockyard's admin API (http.admin.enabled), for its online GC
    # dockyard's local index, when another server on the same root shares it.
    index_directory: Path | None = None

    def storage_yaml(self, index_directory: Path | None) -> str:
        """`storage` of config.yml. `index_directory` (dockyard's local index) is left out
        for distribution."""
        e = self.endpoint
        text = (
            "storage:\n"
            "  s3:\n"
            f"    bucket: {e.bucket}\n"
            f"    region: {e.region}\n"
            f"    regionendpoint: {e.endpoint}\n"
            f"    accesskey: {e.access_key}\n"
            f"    secretkey: {e.secret_key}\n"
            f"    forcepathstyle: {'true' if e.path_style else 'false'}\n"
            f"    secure: {'true' if e.secure else 'false'}\n"
            f"    rootdirectory: {self.root}\n"
        )
        if index_directory is not None:
            text += f"    indexdirectory: {index_directory}\n"
        text += (
            "  delete:\n"
            "    enabled: true\n"
            "  redirect:\n"
            f"    disable: {'true' if self.redirect_disabled else 'false'}\n"
        )
        return text


# dockyard's log line when its background index build or re-sync is done.
INDEX_DONE = re.compile(r"index: (?:built|re-read|in line)\b.*\(([\d.]+)s\)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def config_yaml(
    root: Path, port: int, htpasswd: Path | None = None, catalog_max: int | None = None,
    token: TokenAuth | None = None, storage: str | None = None, admin: bool = False,
    database: str | None = None, log_level: str = "warn", workers: int | None = None,
) -> str:
    """The same distribution-style config for both servers. `catalog_max` raises
    distribution's `catalog.maxentries` (default 1000; a larger `n` gets 400
    PAGINATION_NUMBER_INVALID); dockyard ignores that key. `htpasswd` or `token` guards
    the registry with basic auth or bearer tokens. `storage` replaces the filesystem
    storage section; `admin` turns on dockyard's admin API. `database` (a DSN) puts
    dockyard's index in PostgreSQL, `workers` sets dockyard's `http.workers`."""
    if storage is None:
        storage = (
            "storage:\n"
            "  filesystem:\n"
            f"    rootdirectory: {root}\n"
            "  delete:\n"
            "    enabled: true\n"
        )
    text = (
        "version: 0.1\n"
        "log:\n"
        f"  level: {log_level}\n"
        "  accesslog:\n"
        "    disabled: true\n"
        f"{storage}"
        "http:\n"
        f"  addr: {HOST}:{port}\n"
        "  secret: dockyard-benchmark-secret\n"
    )
    if workers is not None:
        text += f"  workers: {workers}\n"
    if admin:
        text += "  admin:\n    enabled: true\n"
    if database is not None:
        # A JSON string is a YAML string: the DSN's ':' and '@' need no further care.
        text += f"database:\n  enabled: true\n  dsn: {json.dumps(database)}\n"
    if htpasswd is not None:
        text += f"auth:\n  htpasswd:\n    realm: dockyard-bench\n    path: {htpasswd}\n"
    elif token is not None:
        text += token.config_yaml()
    if catalog_max is not None:
        text += f"catalog:\n  maxentries: {catalog_max}\n"
    return text


def stop_process_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a process group we started (SIGKILL after 15 s); reap the leader."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    else:
        # The leader is gone; make sure no worker of its group outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Server:
    name: str
    command: list[str]
    workdir: Path
    htpasswd: Path | None = None
    catalog_max: int | None = None
    token: TokenAuth | None = None
    s3: S3Storage | None = None  # the store on S3 instead of under `root`
    # dockyard only: its index in this PostgreSQL database (a DSN) instead of SQLite.
    database: str | None = None
    # dockyard only: log at info, so that "index: built" shows when the index is done.
    log_index: bool = False
    workers: int | None = None  # dockyard only: http.workers
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    start_seconds: float = 0.0  # from launch until /v2/ answered, of the last start
    notes: list[str] = field(default_factory=list)
    # dockyard only: YAML appended to config.yml as is, for keys of its own
    # (e.g. "ui:\n  enabled: true\n").
    extra_config: str = ""
    # Both servers: YAML appended to config.yml as is, for keys they share
    # (e.g. distribution's `notifications`).
    shared_config: str = ""
    # Both servers: YAML lines (indented two spaces) added to the `http` section.
    http_config: str = ""

    @property
    def root(self) -> Path:
        return self.workdir / "store"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def pid(self) -> int | None:
        return self.process.pid if self.alive() and self.process else None

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port()
        storage = None
        if self.s3 is not None:
            # With S3, `root` holds only dockyard's local index.
            index = self.s3.index_directory or self.root
            storage = self.s3.storage_yaml(None if self.is_distribution else index)
        dockyard = not self.is_distribution
        text = config_yaml(self.root, self.port, self.htpasswd, self.catalog_max, self.token,
                           storage, admin=self.s3 is not None and self.s3.admin,
                           database=self.database if dockyard else None,
                           log_level="info" if dockyard and self.log_index else "warn",
                           workers=self.workers if dockyard else None)
        if dockyard:
            text += self.extra_config
        text += self.shared_config
        if self.http_config:
            text = text.replace("\nhttp:\n", "\nhttp:\n" + self.http_config, 1)
        self.config_path.write_text(text)
        return self.config_path

    @property
    def is_distribution(self) -> bool:
        return Path(self.command[0]).name == "docker-registry" if self.command else False

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.is_distribution:
            # distribution 2.8.2's S3 driver panics when AWS_CA_BUNDLE is set.
            env.pop("AWS_CA_BUNDLE", None)
        return env

    def start(self, port: int = 0) -> None:
        """Start on `port`, or on a free one."""
        self.port = port
        config = self.write_config()
        argv = [part.replace("{config}", str(config)) for part in self.command]
        log = self.log_path.open("ab")
        started = time.perf_counter()
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=self.environment(),
                start_new_session=True,
            )
        finally:
            log.close()
        self.wait_ready(timeout=600.0)
        self.start_seconds = time.perf_counter() - started

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    conn.request("GET", "/v2/")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer /v2/ within {timeout:.0f}s")

    def wait_index_built(self, timeout: float = 3600.0) -> float | None:
        """Wait until dockyard's log says its background index build (or re-sync) is done;
        the seconds it logged. Needs `log_index`; None for distribution."""
        if self.is_distribution or not self.log_index:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"{self.name} exited while building its index:\n"
                                 f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                found = INDEX_DONE.findall(self.log_path.read_text(errors="replace"))
                if found:
                    return float(found[-1])
            time.sleep(0.2)
        raise BenchError(f"{self.name}: no 'index: built' in its log within {timeout:.0f}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        """Restart a server that died (at most 3 times), noting it in the report."""
        if self.alive():
            return
        code = self.process.returncode if self.process else None
        self.notes.append(f"{self.name} had exited (code {code}); log tail:\n{self.log_tail()}")
        if self.restarts >= 3:
            raise BenchError(f"{self.name} keeps dying; not restarting again")
        self.restarts += 1
        self.stop()
        self.start()

    def cpu_seconds(self) -> float:
        if self.process is None:
            return 0.0
        return process_tree_cpu(self.process.pid)

    def rss_per_process(self) -> list[tuple[int, int]]:
        """(pid, VmRSS KiB) of every process of the server's tree, the leader first."""
        if self.process is None:
            return []
        return [(pid, memory_kib(pid).get("VmRSS", 0)) for pid in tree_pids(self.process.pid)]

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_summary(self, lines: int = 4, width: int = 240) -> str:
        """How many lines the server logged, and the last few (shortened)."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if not text:
            return ""
        # The report names no path of the machine it ran on.
        text = [line.replace(str(self.log_path.parent.parent), "$TMP") for line in text]
        tail = [line if len(line) <= width else line[:width] + " …" for line in text[-lines:]]
        return f"({len(text)} lines in all; the last {len(tail)})\n" + "\n".join(tail)

    def remove_blob(self, digest: str, repo: str) -> None:
        """Forget a blob so the next push of it is fresh: DELETE unlinks it from the repository
        (and from any index the server keeps), then its data goes from disk (both servers use
        distribution's layout; neither deletes blob data through the API)."""
        if self.alive():
            conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            try:
                conn.request("DELETE", f"/v2/{repo}/blobs/{digest}")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        if self.s3 is not None:
            from .s3store import V2, delete_prefix

            endpoint, root = self.s3.endpoint, self.s3.root.lstrip("/")
            blob_key = endpoint.blob_key(self.s3.root, digest)
            delete_prefix(endpoint, blob_key.rsplit("/", 1)[0] + "/")
            delete_prefix(endpoint, f"{root}/{V2}/repositories/{repo}/")
            return
        shutil.rmtree(blob_dir(self.root, digest), ignore_errors=True)
        shutil.rmtree(self.root / "docker/registry/v2/repositories" / repo, ignore_errors=True)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
{user}pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


@dataclass
class Nginx:
    """nginx serving one directory, as the ceiling for a blob pull from disk."""

    workdir: Path
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(
                workers=os.cpu_count() or 1,
                user=user,
                dir=self.workdir,
                host=HOST,
                port=self.port,
                root=self.root,
            )
        )
        log = (self.workdir / "stderr.log").open("ab")
        try:
            self.process = subprocess.Popen(
                ["nginx", "-p", str(self.workdir), "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = (self.workdir / "stderr.log").read_text(errors="replace")
                raise BenchError(f"nginx exited during start-up: {text[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            time.sleep(0.05)
        raise BenchError("nginx did not listen within 30 s")

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None
