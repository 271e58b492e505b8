#!/usr/bin/env python3
"""Benchmark dockyard against distribution 2.8.2 on this machine.

Run from the repository root:

    python benchmarks/run.py                 # full run, writes docs/performance.md
    python benchmarks/run.py --quick         # fast check (64 MiB blob, 3 s wrk, 1 round)

Both registries are started here, each on its own free loopback port with its own temporary
storage root and an equivalent config.yml, and are stopped again at the end, also on error or
Ctrl-C. Every scenario runs for both servers, interleaved (the order flips every round), and the
report holds the median of each metric and the ratio dockyard/distribution.

Only 127.0.0.1 is ever contacted. External tools: docker-registry, curl, wrk, skopeo.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gzip
import hashlib
import http.client
import importlib.metadata
import io
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
GiB = 1024 * MiB
HOST = "127.0.0.1"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"

DISTRIBUTION = "distribution"
DOCKYARD = "dockyard"
SERVERS = (DISTRIBUTION, DOCKYARD)


class BenchError(Exception):
    """A scenario could not be completed against one server."""


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Settings:
    quick: bool
    rounds: int
    blob_size: int
    chunk_size: int
    wrk_duration: int
    wrk_threads: int
    wrk_connections: int
    layer_size: int
    layer_count: int
    dockyard_cmd: list[str]
    distribution_cmd: list[str]
    out: Path | None
    tmp_parent: Path | None
    keep_tmp: bool
    scenarios: tuple[str, ...]
    command_line: str
    quiet_wait: float


SCENARIOS = ("monolithic", "chunked", "pull", "manifest", "skopeo")


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        description="Benchmark dockyard against distribution 2.8.2 (loopback only)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="64 MiB blob, 3 s wrk, 1 round, small layers"
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5, quick 1)")
    parser.add_argument("--blob-mib", type=int, help="blob size in MiB (default 1024, quick 64)")
    parser.add_argument("--chunk-mib", type=int, default=16, help="PATCH chunk size in MiB")
    parser.add_argument("--wrk-seconds", type=int, help="wrk duration (default 10, quick 3)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument(
        "--layer-mib", type=int, help="size of each skopeo image layer (default 4, quick 1)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--dockyard-cmd",
        default=os.environ.get(
            "DOCKYARD_BENCH_CMD", f"{sys.executable} -m dockyard serve {{config}}"
        ),
        help="command that serves a config file ({config} is replaced); env DOCKYARD_BENCH_CMD",
    )
    parser.add_argument(
        "--distribution-cmd",
        default="docker-registry serve {config}",
        help="command for the reference server ({config} is replaced)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report to write (default docs/performance.md for a full run; "
        "a --quick run writes nothing unless --out is given)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for other processes to go "
        "below 0.3 busy cores (0 disables)",
    )
    parser.add_argument("--tmpdir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--keep-tmp", action="store_true", help="keep blobs, stores and logs")
    args = parser.parse_args(argv)

    quick = bool(args.quick)
    scenarios = tuple(s.strip() for s in str(args.scenarios).split(",") if s.strip())
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    out: Path | None = args.out
    if out is None and not quick:
        out = REPO_ROOT / "docs" / "performance.md"
    rounds = args.rounds if args.rounds is not None else (1 if quick else 5)
    if not 1 <= rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    blob_mib = args.blob_mib if args.blob_mib is not None else (64 if quick else 1024)
    return Settings(
        quick=quick,
        rounds=rounds,
        blob_size=blob_mib * MiB,
        chunk_size=int(args.chunk_mib) * MiB,
        wrk_duration=args.wrk_seconds if args.wrk_seconds is not None else (3 if quick else 10),
        wrk_threads=int(args.wrk_threads),
        wrk_connections=int(args.wrk_connections),
        layer_size=(args.layer_mib if args.layer_mib is not None else (1 if quick else 4)) * MiB,
        layer_count=5,
        dockyard_cmd=shlex.split(args.dockyard_cmd),
        distribution_cmd=shlex.split(args.distribution_cmd),
        out=out,
        tmp_parent=args.tmpdir,
        keep_tmp=bool(args.keep_tmp),
        scenarios=scenarios,
        quiet_wait=max(0.0, min(float(args.quiet_wait), 600.0)),
        command_line=" ".join(["python", "benchmarks/run.py", *map(shlex.quote, argv)]),
    )


# --------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def config_yaml(root: Path, port: int) -> str:
    """The same distribution-style config for both servers."""
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {HOST}:{port}\n"
        "  secret: dockyard-benchmark-secret\n"
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user+system, including reaped children) of a process and its descendants."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                raw = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    tree = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sum(times.get(pid, 0.0) for pid in tree)


@dataclass
class Server:
    name: str
    command: list[str]
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.workdir / "store"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        self.port = free_port()
        config = self.workdir / "config.yml"
        config.write_text(config_yaml(self.root, self.port))
        argv = [part.replace("{config}", str(config)) for part in self.command]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.wait_ready()

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
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer /v2/ within {timeout:.0f}s")

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

    def stop(self) -> None:
        process = self.process
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
        algorithm, hexpart = digest.split(":", 1)
        v2 = self.root / "docker" / "registry" / "v2"
        shutil.rmtree(v2 / "blobs" / algorithm / hexpart[:2] / hexpart, ignore_errors=True)
        shutil.rmtree(v2 / "repositories" / repo, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A small keep-alive HTTP client (http.client plus sendfile for bodies)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Client:
    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def _finish(self) -> Response:
        resp = self.conn.getresponse()
        body = resp.read()
        headers = {key.lower(): value for key, value in resp.getheaders()}
        return Response(resp.status, headers, body)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        try:
            self.conn.request(method, target, body=body, headers=headers or {})
            return self._finish()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise BenchError(f"{method} {target}: {exc!r}") from exc

    def send_file(
        self,
        method: str,
        target: str,
        handle: BinaryIO,
        offset: int,
        count: int,
        headers: dict[str, str],
    ) -> Response:
        """Send `count` bytes of a file as the body with sendfile(2): the client stays cheap."""
        try:
            self.conn.putrequest(method, target, skip_accept_encoding=True)
            for key, value in headers.items():
                self.conn.putheader(key, value)
            self.conn.putheader("Content-Length", str(count))
            self.conn.endheaders()
            sock = self.conn.sock
            assert sock is not None
            try:
                sent = sock.sendfile(handle, offset, count)
            except (BrokenPipeError, ConnectionResetError):
                sent = -1  # the server answered early; read what it said
            response = self._finish()
            if sent != count and response.status < 400:
                raise BenchError(f"{method} {target}: sent {sent} of {count} bytes")
            return response
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise BenchError(f"{method} {target}: {exc!r}") from exc


def location_target(location: str) -> str:
    """Path and query of a Location header (absolute or relative)."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_digest(target: str, digest: str) -> str:
    return target + ("&" if "?" in target else "?") + "digest=" + urllib.parse.quote(digest)


def expect(response: Response, statuses: tuple[int, ...], what: str) -> Response:
    if response.status not in statuses:
        raise BenchError(f"{what}: HTTP {response.status} {response.body[:300]!r}")
    return response


def start_upload(client: Client, repo: str) -> str:
    response = expect(
        client.request("POST", f"/v2/{repo}/blobs/uploads/", body=b""), (202,), "POST upload"
    )
    location = response.header("location")
    if not location:
        raise BenchError("POST upload: no Location header")
    return location_target(location)


def upload_bytes(client: Client, repo: str, data: bytes) -> str:
    """Untimed helper: POST + monolithic PUT of a small blob. Returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    target = start_upload(client, repo)
    expect(
        client.request(
            "PUT",
            with_digest(target, digest),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        ),
        (201,),
        "PUT blob",
    )
    return digest


def check_blob(client: Client, repo: str, digest: str, size: int) -> None:
    response = expect(client.request("HEAD", f"/v2/{repo}/blobs/{digest}"), (200,), "HEAD blob")
    length = response.header("content-length")
    if length and int(length) != size:
        raise BenchError(f"HEAD blob: Content-Length {length}, expected {size}")


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Blob:
    path: Path
    size: int
    digest: str


def make_blob(directory: Path, size: int, name: str = "blob.bin") -> Blob:
    path = directory / name
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = os.urandom(min(16 * MiB, remaining))
            hasher.update(piece)
            handle.write(piece)
            remaining -= len(piece)
    return Blob(path, size, "sha256:" + hasher.hexdigest())


def run_curl(args: list[str], timeout: float) -> tuple[str, str]:
    try:
        done = subprocess.run(
            ["curl", "-sS", "--max-time", str(int(timeout)), *args],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"curl timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(f"curl exit {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout, done.stderr


def scenario_monolithic(server: Server, blob: Blob, settings: Settings, round_no: int) -> float:
    repo = "bench/monolithic"
    server.remove_blob(blob.digest, repo)  # also the copy a previous chunked push left
    client = Client(server.port)
    try:
        started = time.perf_counter()
        target = start_upload(client, repo)
        stdout, _ = run_curl(
            [
                "-X",
                "PUT",
                "-T",
                str(blob.path),
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                "Expect:",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                server.base + with_digest(target, blob.digest),
            ],
            timeout=900,
        )
        elapsed = time.perf_counter() - started
        if stdout.strip() != "201":
            raise BenchError(f"monolithic PUT: HTTP {stdout.strip()}")
        check_blob(client, repo, blob.digest, blob.size)
    finally:
        client.close()
    # The blob stays until the chunked push, which removes it first; round 1 verifies it.
    return blob.size / elapsed / 1e6


def chunked_push(server: Server, blob: Blob, repo: str, chunk: int) -> float:
    """POST, PATCH chunks with Content-Range over one keep-alive connection, PUT. Seconds."""
    client = Client(server.port)
    try:
        with blob.path.open("rb") as handle:
            started = time.perf_counter()
            target = start_upload(client, repo)
            offset = 0
            patches = 0
            while offset < blob.size:
                patches += 1
                if patches > 100_000:
                    raise BenchError("too many PATCH requests")
                count = min(chunk, blob.size - offset)
                response = expect(
                    client.send_file(
                        "PATCH",
                        target,
                        handle,
                        offset,
                        count,
                        {
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + count - 1}",
                        },
                    ),
                    (202,),
                    f"PATCH {offset}-{offset + count - 1}",
                )
                location = response.header("location")
                if location:
                    target = location_target(location)
                offset += count
            expect(
                client.request("PUT", with_digest(target, blob.digest), body=b""),
                (201,),
                "closing PUT",
            )
            elapsed = time.perf_counter() - started
        check_blob(client, repo, blob.digest, blob.size)
    finally:
        client.close()
    return elapsed


CHUNKED_REPO = "bench/chunked"


def scenario_chunked(server: Server, blob: Blob, settings: Settings, round_no: int) -> float:
    # The blob stays afterwards: the pull scenario reads it, the next push removes it first.
    server.remove_blob(blob.digest, CHUNKED_REPO)
    elapsed = chunked_push(server, blob, CHUNKED_REPO, settings.chunk_size)
    return blob.size / elapsed / 1e6


def verify_blob(server: Server, blob: Blob, scenario: str) -> None:
    """Untimed check that the server really holds the bytes: after a push, hash the stored
    file (both servers use distribution's layout); after the pull, hash a full GET."""
    hasher = hashlib.sha256()
    received = 0
    if scenario == "pull":
        client = Client(server.port)
        try:
            client.conn.request("GET", f"/v2/{CHUNKED_REPO}/blobs/{blob.digest}")
            response = client.conn.getresponse()
            if response.status != 200:
                raise BenchError(f"verification GET: HTTP {response.status}")
            buffer = bytearray(4 * MiB)
            while True:
                count = response.readinto(buffer)
                if not count:
                    break
                hasher.update(memoryview(buffer)[:count])
                received += count
        except (OSError, http.client.HTTPException) as exc:
            raise BenchError(f"verification GET: {exc!r}") from exc
        finally:
            client.close()
    else:
        algorithm, hexpart = blob.digest.split(":", 1)
        path = server.root / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart / "data"
        if not path.exists():
            log(f"  {server.name:12} {scenario}: no {path}, stored bytes not verified")
            return
        with path.open("rb") as handle:
            while piece := handle.read(16 * MiB):
                hasher.update(piece)
                received += len(piece)
    digest = "sha256:" + hasher.hexdigest()
    if received != blob.size or digest != blob.digest:
        raise BenchError(
            f"verification after {scenario}: {received} bytes with digest {digest}, "
            f"expected {blob.size} bytes with {blob.digest}"
        )
    log(f"  {server.name:12} {scenario}: verified {received} bytes, digest matches")


def prepare_pull(server: Server, blob: Blob) -> None:
    """Untimed: make sure the blob the pull reads is there (the chunked push leaves it)."""
    client = Client(server.port)
    try:
        check_blob(client, CHUNKED_REPO, blob.digest, blob.size)
    except BenchError:
        chunked_push(server, blob, CHUNKED_REPO, 64 * MiB)
    finally:
        client.close()


def scenario_pull(server: Server, blob: Blob, settings: Settings, round_no: int) -> float:
    started = time.perf_counter()
    stdout, _ = run_curl(
        [
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            f"{server.base}/v2/{CHUNKED_REPO}/blobs/{blob.digest}",
        ],
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    fields = stdout.split()
    if len(fields) != 2 or fields[0] != "200" or int(fields[1]) != blob.size:
        raise BenchError(f"pull: expected 200 and {blob.size} bytes, got {stdout.strip()!r}")
    return blob.size / elapsed / 1e6


# ---- manifests with wrk


def push_small_image(client: Client, repo: str, tag: str) -> str:
    """Untimed set-up: a config, one small layer and an OCI manifest under `tag`."""
    layer = gzip.compress(os.urandom(4096))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    ).encode()
    layer_digest = upload_bytes(client, repo, layer)
    config_digest = upload_bytes(client, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    expect(
        client.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        ),
        (201,),
        "PUT manifest",
    )
    got = expect(
        client.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}),
        (200,),
        "GET manifest",
    )
    if got.body != manifest:
        raise BenchError("GET manifest returned different bytes than were pushed")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


WRK_SCRIPT = """\
wrk.method = "{method}"
wrk.headers["Accept"] = "{accept}"
"""

MANIFEST_PATH = "/v2/bench/manifest/manifests/latest"
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict[str, float]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\b", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rate and p99 and total):
        raise BenchError(f"could not parse wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = int(non2xx.group(1)) if non2xx else 0
    socket_errors = sum(int(x) for x in errors.groups()) if errors else 0
    if int(total.group(1)) == 0:
        raise BenchError(f"wrk completed no request:\n{output}")
    if bad or socket_errors:
        raise BenchError(
            f"wrk saw {bad} non-2xx responses and {socket_errors} socket errors "
            f"of {total.group(1)} requests:\n{output}"
        )
    return {"rps": float(rate.group(1)), "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)]}


def run_wrk(server: Server, settings: Settings, workdir: Path) -> dict[str, float]:
    """Manifest GET by tag under wrk --latency."""
    script = workdir / "manifest-get.lua"
    script.write_text(WRK_SCRIPT.format(method="GET", accept=MANIFEST_ACCEPT))
    argv = [
        "wrk",
        "--latency",
        "-t",
        str(settings.wrk_threads),
        "-c",
        str(settings.wrk_connections),
        "-d",
        f"{settings.wrk_duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"{server.base}{MANIFEST_PATH}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=settings.wrk_duration + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("wrk did not finish in time") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk exit {done.returncode}: {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def parse_ab(output: str, csv_text: str) -> dict[str, float]:
    rate = re.search(r"Requests per second:\s+([\d.]+)", output)
    complete = re.search(r"Complete requests:\s+(\d+)", output)
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    p99 = re.search(r"^99,([\d.]+)$", csv_text, re.MULTILINE)
    if not (rate and complete and failed and p99):
        raise BenchError(f"could not parse ab output:\n{output}")
    if int(complete.group(1)) == 0:
        raise BenchError(f"ab completed no request:\n{output}")
    bad = int(failed.group(1)) + (int(non2xx.group(1)) if non2xx else 0)
    if bad:
        raise BenchError(f"ab saw {bad} failed or non-2xx responses:\n{output}")
    return {"rps": float(rate.group(1)), "p99_ms": float(p99.group(1))}


def run_ab(server: Server, settings: Settings, workdir: Path) -> dict[str, float]:
    """Manifest HEAD by tag under ApacheBench: wrk 4.1 cannot parse responses to HEAD
    (it waits for a body of Content-Length bytes; wrk issue #198)."""
    csv_path = workdir / "ab-head.csv"
    csv_path.unlink(missing_ok=True)
    argv = [
        "ab",
        "-q",
        "-k",
        "-i",
        "-c",
        str(settings.wrk_connections),
        "-t",
        str(settings.wrk_duration),
        "-n",
        "100000000",  # after -t, so the time limit is what ends the run
        "-s",
        "5",
        "-e",
        str(csv_path),
        "-H",
        f"Accept: {MANIFEST_ACCEPT}",
        f"{server.base}{MANIFEST_PATH}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=settings.wrk_duration + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("ab did not finish in time") from exc
    if done.returncode != 0:
        raise BenchError(f"ab exit {done.returncode}: {(done.stderr or done.stdout)[-300:]}")
    csv_text = csv_path.read_text() if csv_path.exists() else ""
    return parse_ab(done.stdout, csv_text)


# ---- skopeo


def tar_with_file(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_oci_layout(directory: Path, tag: str, layer_count: int, layer_size: int) -> None:
    """An OCI image layout with `layer_count` gzip layers of random content."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        (blobs / hexdigest).write_bytes(data)
        return "sha256:" + hexdigest

    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for index in range(layer_count):
        tar = tar_with_file(f"layer{index}.bin", os.urandom(layer_size))
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        compressed = gzip.compress(tar, compresslevel=1, mtime=0)
        layers.append(
            {"mediaType": OCI_LAYER_GZIP, "digest": put(compressed), "size": len(compressed)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
            "layers": layers,
        }
    ).encode()
    image_index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_text(json.dumps(image_index))


def run_skopeo(args: list[str], policy: Path) -> float:
    argv = ["skopeo", "--policy", str(policy), "copy", "--quiet", *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("skopeo did not finish in 600s") from exc
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"skopeo exit {done.returncode}: {done.stderr.strip()[:500]}")
    return elapsed


# --------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool


METRICS = (
    Metric("monolithic", "Monolithic blob push (POST + one PUT)", "MB/s", True),
    Metric("chunked", "Chunked blob push (POST + PATCH + PUT)", "MB/s", True),
    Metric("pull", "Blob pull (GET)", "MB/s", True),
    Metric("manifest_get_rps", "Manifest GET by tag (wrk), throughput", "req/s", True),
    Metric("manifest_get_p99", "Manifest GET by tag (wrk), p99 latency", "ms", False),
    Metric("manifest_head_rps", "Manifest HEAD by tag (ab), throughput", "req/s", True),
    Metric("manifest_head_p99", "Manifest HEAD by tag (ab), p99 latency", "ms", False),
    Metric("skopeo_push", "skopeo copy push, 5-layer image", "s", False),
    Metric("skopeo_pull", "skopeo copy pull, 5-layer image", "s", False),
)

CPU_GROUPS = {
    "monolithic": "monolithic push",
    "chunked": "chunked push",
    "pull": "pull",
    "manifest_get": "manifest GET (wrk)",
    "manifest_head": "manifest HEAD (ab)",
    "skopeo": "skopeo push + pull",
}


@dataclass
class Results:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    wall: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    client: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    other: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    discarded: dict[str, int] = field(default_factory=dict)
    failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, key: str, server: str, value: float) -> None:
        self.values.setdefault(key, {}).setdefault(server, []).append(value)

    def add_cpu(
        self, group: str, server: str, cpu: float, wall: float, client: float, other: float
    ) -> None:
        self.cpu.setdefault(group, {}).setdefault(server, []).append(cpu)
        self.wall.setdefault(group, {}).setdefault(server, []).append(wall)
        self.client.setdefault(group, {}).setdefault(server, []).append(client)
        self.other.setdefault(group, {}).setdefault(server, []).append(other)

    def fail(self, group: str, server: str, message: str) -> None:
        self.failures.setdefault(group, {}).setdefault(server, []).append(message)


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def host_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process plus its reaped children (curl, wrk, ab, skopeo)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


QUIET_CORES = 0.3


def wait_for_quiet(max_wait: float) -> float:
    """Wait (at most `max_wait` s) until other processes use less than QUIET_CORES cores.

    The machine is shared, so a measurement that starts while something else is busy is
    mostly measuring that. Returns the last background load seen, in cores.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy, mine, started = host_busy_seconds(), own_cpu_seconds(), time.monotonic()
        time.sleep(0.5)
        elapsed = time.monotonic() - started
        load = max(0.0, (host_busy_seconds() - busy) - (own_cpu_seconds() - mine)) / elapsed
        if load < QUIET_CORES or time.monotonic() >= deadline:
            return load


NOISY_CORES = 0.5
ATTEMPTS = 3


def measured(
    results: Results,
    group: str,
    server: Server,
    action: Callable[[], dict[str, float]],
    quiet_wait: float,
) -> None:
    """Run one timed action, recording its metrics and the server's CPU time, or its failure.

    A run during which other processes kept more than NOISY_CORES cores busy is discarded
    and repeated (ATTEMPTS in all; the last one counts whatever the load).
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            server.ensure_running()
            os.sync()  # earlier writes must not be flushed during this run
            idle_load = wait_for_quiet(quiet_wait)
            host_before, own_before = host_busy_seconds(), own_cpu_seconds()
            cpu_before = server.cpu_seconds()
            started = time.perf_counter()
            values = action()
            wall = time.perf_counter() - started
            cpu = server.cpu_seconds() - cpu_before
            client = own_cpu_seconds() - own_before
            other = max(0.0, host_busy_seconds() - host_before - cpu - client) / wall
        except BenchError as exc:
            message = str(exc)
            if not server.alive():
                message += f"\n(server exited; log tail)\n{server.log_tail()}"
            results.fail(group, server.name, message)
            first = message.splitlines()[0] if message else ""
            log(f"  {server.name:12} {group}: FAILED: {first}")
            return
        shown = ", ".join(f"{key}={value:.1f}" for key, value in values.items())
        detail = (
            f"server CPU {cpu:.2f}s, client {client:.2f}s, others {other:.2f} cores, in {wall:.2f}s"
        )
        if idle_load >= QUIET_CORES:
            detail += f"; machine never got quiet, {idle_load:.1f} cores busy before"
        if other > NOISY_CORES and attempt < ATTEMPTS:
            results.discarded[server.name] = results.discarded.get(server.name, 0) + 1
            log(f"  {server.name:12} {group}: {shown} ({detail}) DISCARDED: machine busy")
            continue
        for key, value in values.items():
            results.add(key, server.name, value)
        results.add_cpu(group, server.name, cpu, wall, client, other)
        log(f"  {server.name:12} {group}: {shown} ({detail})")
        return


def warm_pull(server: Server, blob: Blob, settings: Settings) -> float:
    prepare_pull(server, blob)
    return scenario_pull(server, blob, settings, -1)


def warm_up(settings: Settings, servers: dict[str, Server], workdir: Path, policy: Path) -> None:
    """One short untimed pass of every scenario per server, so first-use costs (imports,
    caches, new directories) do not land in round 1. Failures here are only logged."""
    short = dataclasses.replace(settings, wrk_duration=1, layer_size=MiB // 4)
    warm_blob = make_blob(workdir, 32 * MiB, "warm-up.bin")
    steps: list[tuple[str, Callable[[Server], object]]] = [
        ("monolithic", lambda s: scenario_monolithic(s, warm_blob, short, -1)),
        ("chunked", lambda s: scenario_chunked(s, warm_blob, short, -1)),
        ("pull", lambda s: warm_pull(s, warm_blob, short)),
        ("manifest", lambda s: (run_wrk(s, short, workdir), run_ab(s, short, workdir))),
        ("skopeo", lambda s: skopeo_round(s, short, workdir, policy, 999)),
    ]
    log("warm-up (untimed)")
    for server in servers.values():
        for scenario, step in steps:
            if scenario not in settings.scenarios:
                continue
            try:
                step(server)
            except BenchError as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                log(f"  {server.name:12} warm-up {scenario} failed: {first}")
    warm_blob.path.unlink(missing_ok=True)


def run_rounds(
    settings: Settings, servers: dict[str, Server], blob: Blob | None, workdir: Path
) -> Results:
    results = Results()
    policy = workdir / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    if "manifest" in settings.scenarios:
        for server in servers.values():
            client = Client(server.port)
            try:
                push_small_image(client, "bench/manifest", "latest")
            except BenchError as exc:
                results.fail("manifest_get", server.name, f"set-up failed: {exc}")
                results.fail("manifest_head", server.name, f"set-up failed: {exc}")
            finally:
                client.close()

    warm_up(settings, servers, workdir, policy)
    for round_no in range(settings.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        log(f"round {round_no + 1}/{settings.rounds} (order: {', '.join(order)})")
        for scenario in settings.scenarios:
            for name in order:
                server = servers[name]
                if scenario in ("monolithic", "chunked", "pull"):
                    assert blob is not None
                    function = {
                        "monolithic": scenario_monolithic,
                        "chunked": scenario_chunked,
                        "pull": scenario_pull,
                    }[scenario]

                    def blob_action(
                        f: Callable[[Server, Blob, Settings, int], float] = function,
                        s: Server = server,
                        b: Blob = blob,
                        key: str = scenario,
                        r: int = round_no,
                    ) -> dict[str, float]:
                        return {key: f(s, b, settings, r)}

                    if scenario == "pull":
                        try:
                            server.ensure_running()
                            prepare_pull(server, blob)
                        except BenchError as exc:
                            results.fail(scenario, name, f"set-up (pushing the blob) failed: {exc}")
                            log(f"  {name:12} pull set-up failed: {str(exc)[:200]}")
                            continue
                    measured(results, scenario, server, blob_action, settings.quiet_wait)
                    if round_no == 0:
                        try:
                            verify_blob(server, blob, scenario)
                        except BenchError as exc:
                            results.fail(scenario, name, str(exc))
                            log(f"  {name:12} {scenario}: VERIFICATION FAILED: {exc}")
                elif scenario == "manifest":
                    for method in ("GET", "HEAD"):
                        group = f"manifest_{method.lower()}"
                        if (
                            results.failures.get(group, {})
                            .get(name, [""])[0]
                            .startswith("set-up failed")
                        ):
                            continue

                        def wrk_action(
                            s: Server = server, m: str = method, g: str = group
                        ) -> dict[str, float]:
                            runner = run_wrk if m == "GET" else run_ab
                            got = runner(s, settings, workdir)
                            return {f"{g}_rps": got["rps"], f"{g}_p99": got["p99_ms"]}

                        measured(results, group, server, wrk_action, settings.quiet_wait)
                elif scenario == "skopeo":

                    def skopeo_action(s: Server = server, r: int = round_no) -> dict[str, float]:
                        return skopeo_round(s, settings, workdir, policy, r)

                    measured(results, "skopeo", server, skopeo_action, settings.quiet_wait)
    return results


def skopeo_round(
    server: Server, settings: Settings, workdir: Path, policy: Path, round_no: int
) -> dict[str, float]:
    # Fresh random layers every time, so neither skopeo's blob-info cache nor the registry
    # already knows them (no cross-repository mounts, no skipped uploads).
    base = workdir / f"skopeo-{server.name}-{round_no}"
    source = base / "src"
    target = base / "pulled"
    write_oci_layout(source, "v1", settings.layer_count, settings.layer_size)
    ref = f"docker://{HOST}:{server.port}/bench/skopeo{round_no}:v1"
    try:
        push = run_skopeo(["--dest-tls-verify=false", f"oci:{source}:v1", ref], policy)
        pull = run_skopeo(["--src-tls-verify=false", ref, f"oci:{target}:v1"], policy)
        pulled = json.loads((target / "index.json").read_text())
        if len(pulled.get("manifests", [])) != 1:
            raise BenchError("skopeo pull produced an unexpected index.json")
        for layer_file in (source / "blobs" / "sha256").iterdir():
            if not (target / "blobs" / "sha256" / layer_file.name).exists():
                raise BenchError(f"pulled image lacks blob {layer_file.name}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"skopeo_push": push, "skopeo_pull": pull}


# --------------------------------------------------------------------------------------------
# Report


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine_info(settings: Settings) -> dict[str, str]:
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        dockyard_version = importlib.metadata.version("dockyard")
    except importlib.metadata.PackageNotFoundError:
        dockyard_version = "unknown"
    revision = tool_version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{4,40}", revision):
        revision = "no commit"
    else:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            status = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            if status.stdout.strip():
                revision += " plus uncommitted changes in src/"
    distribution = tool_version([settings.distribution_cmd[0], "--version"])
    dockyard_cmd = " ".join(
        "python" if part == sys.executable else part for part in settings.dockyard_cmd
    )
    return {
        "cpus": f"{os.cpu_count()} CPUs ({cpu_model})",
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "distribution": distribution,
        "dockyard": f"{dockyard_version} ({revision}), served by `{dockyard_cmd}`",
        "tools": "; ".join(
            [
                tool_version(["curl", "--version"]).split(" (")[0],
                tool_version(["wrk", "-v"]).split(" [")[0],
                tool_version(["ab", "-V"]).replace("This is ", "").split(" <")[0],
                tool_version(["skopeo", "--version"]),
            ]
        ),
    }


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def median_cell(values: list[float] | None, failures: list[str] | None) -> str:
    if not values:
        return "failed" if failures else "n/a"
    cell = fmt(statistics.median(values))
    if failures:
        cell += f" ({len(failures)} failed)"
    return cell


def group_of(key: str) -> str:
    if key.startswith("manifest_get"):
        return "manifest_get"
    if key.startswith("manifest_head"):
        return "manifest_head"
    if key.startswith("skopeo"):
        return "skopeo"
    return key


def results_table(results: Results, settings: Settings) -> str:
    size = (
        f"{settings.blob_size // MiB} MiB"
        if settings.blob_size < GiB
        else (f"{settings.blob_size / GiB:g} GiB")
    )
    rows = [
        "| Scenario | Unit | distribution 2.8.2 | dockyard | dockyard / distribution |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for metric in METRICS:
        per_server = results.values.get(metric.key, {})
        fails = results.failures.get(group_of(metric.key), {})
        if not per_server and not fails:
            continue
        label = metric.label
        if metric.key in ("monolithic", "chunked", "pull"):
            label += f", {size}"
            if metric.key == "chunked":
                label += f" in {settings.chunk_size // MiB} MiB chunks"
        unit = f"{metric.unit} ({'higher' if metric.higher_is_better else 'lower'} is better)"
        dist = per_server.get(DISTRIBUTION)
        dock = per_server.get(DOCKYARD)
        ratio = "n/a"
        if dist and dock and statistics.median(dist) > 0:
            value = statistics.median(dock) / statistics.median(dist)
            better = value >= 1 if metric.higher_is_better else value <= 1
            ratio = f"{value:.2f}" + ("" if better else " ⚠" if abs(value - 1) > 0.1 else "")
        rows.append(
            f"| {label} | {unit} | {median_cell(dist, fails.get(DISTRIBUTION))} "
            f"| {median_cell(dock, fails.get(DOCKYARD))} | {ratio} |"
        )
    return "\n".join(rows)


def cpu_table(results: Results) -> str:
    rows = [
        "| Scenario (one run) | distribution: server CPU / client CPU / wall, s "
        "| dockyard: server CPU / client CPU / wall, s "
        "| other processes, cores (distribution / dockyard) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for group, label in CPU_GROUPS.items():
        if not results.cpu.get(group):
            continue
        cells = []
        others = []
        for server in SERVERS:
            cpu = results.cpu[group].get(server)
            if not cpu:
                cells.append("n/a")
                others.append("n/a")
                continue
            client = results.client[group][server]
            wall = results.wall[group][server]
            cells.append(
                f"{statistics.median(cpu):.2f} / {statistics.median(client):.2f} / "
                f"{statistics.median(wall):.2f}"
            )
            others.append(f"{statistics.median(results.other[group][server]):.2f}")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {' / '.join(others)} |")
    return "\n".join(rows)


def raw_values(results: Results) -> str:
    rows = [
        "| Metric | distribution, per round | dockyard, per round |",
        "| --- | --- | --- |",
    ]

    def cells(per_server: dict[str, list[float]], digits: str) -> list[str]:
        return [
            ", ".join(format(v, digits) if digits else fmt(v) for v in per_server.get(name, []))
            or "n/a"
            for name in SERVERS
        ]

    for metric in METRICS:
        per_server = results.values.get(metric.key, {})
        if per_server:
            dist, dock = cells(per_server, "")
            rows.append(f"| {metric.key} ({metric.unit}) | {dist} | {dock} |")
    for group in CPU_GROUPS:
        per_server = results.other.get(group, {})
        if per_server:
            dist, dock = cells(per_server, ".2f")
            rows.append(f"| other processes during {group} (cores) | {dist} | {dock} |")
    return "\n".join(rows)


def failure_notes(results: Results, servers: dict[str, Server]) -> str:
    lines: list[str] = []
    for group, per_server in results.failures.items():
        for name, messages in per_server.items():
            for message in messages[:3]:
                body = message.strip().replace("```", "'''")
                lines.append(f"- **{name}, {group}**:\n\n  ```\n  {body[:1500]}\n  ```")
            if len(messages) > 3:
                lines.append(f"- **{name}, {group}**: {len(messages) - 3} more failures")
    for server in servers.values():
        for note in server.notes:
            lines.append(f"- **{server.name}**: {note[:1500]}")
    return "\n".join(lines)


def report(
    settings: Settings,
    results: Results,
    servers: dict[str, Server],
    info: dict[str, str],
    started: datetime.datetime,
    duration: float,
    logs: dict[str, str],
) -> str:
    blob = f"{settings.blob_size // MiB} MiB"
    rounds = f"{settings.rounds} round" + ("s" if settings.rounds != 1 else "")
    mode = "quick check" if settings.quick else "full run"
    notes = failure_notes(results, servers)
    parts = [
        "# Performance: dockyard vs distribution 2.8.2",
        "",
        "Generated by `benchmarks/run.py`; rerun it to refresh this page. Numbers from one noisy "
        "2-core machine are indicative: compare the ratio column, not absolute values, "
        "and rerun before drawing fine conclusions.",
        "",
        f"- Command: `{settings.command_line}` ({mode}, {rounds}, {duration / 60:.1f} minutes)",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {info['cpus']}, {info['memory']} memory, {info['kernel']}",
        f"- Python: {info['python']}",
        f"- distribution: `{info['distribution']}`",
        f"- dockyard: {info['dockyard']}",
        f"- Clients: {info['tools']}",
        "",
        "## Results (medians)",
        "",
        results_table(results, settings),
        "",
        "MB/s is 10^6 bytes per second. The ratio is dockyard's median divided by "
        "distribution's; ⚠ marks a ratio more than 10% on the worse side.",
        "",
        "## Server CPU time (medians)",
        "",
        "CPU seconds (user + system) that the server's process tree and the benchmark's "
        "clients (this script, curl, wrk, ab, skopeo) spent during one run of the scenario, "
        "its wall-clock seconds, and the average number of cores that other processes on "
        "the machine kept busy meanwhile (the machine is shared; each run first waits, up "
        f"to {settings.quiet_wait:.0f} s, until others use less than {QUIET_CORES} of a core, "
        f"and a run during which they averaged more than {NOISY_CORES} cores is discarded and "
        f"repeated, at most {ATTEMPTS - 1} times). Discarded runs: "
        + ", ".join(f"{name} {results.discarded.get(name, 0)}" for name in SERVERS)
        + ".",
        "",
        cpu_table(results),
        "",
        "## Method",
        "",
        "`benchmarks/run.py` starts `docker-registry serve` (distribution 2.8.2) and "
        "`python -m dockyard serve` on free 127.0.0.1 ports, each with its own temporary "
        "filesystem storage root and the same config.yml (version 0.1, filesystem storage, "
        "deletes enabled, log level warn, access log disabled); otherwise each runs with its "
        "defaults (Go's default GOGC for distribution, dockyard's default worker count). "
        "It runs every scenario "
        f"against both servers interleaved, {rounds}, flipping which server "
        "goes first each round, and reports medians. The "
        f"{blob} blob is random bytes generated once; before each blob push the blob is "
        "removed from the server's store so every push writes it anew; in the first round "
        "the stored file (after each push) and a full GET (after the pull) are hashed "
        "against the digest, untimed. Before every run `sync` flushes earlier writes so they "
        "do not spill into it, and one short untimed warm-up pass of every scenario precedes "
        "round 1. "
        "The monolithic push times POST plus one `PUT ?digest=` whose body `curl -T` streams "
        "from the file; the chunked push times POST, `PATCH` requests of "
        f"{settings.chunk_size // MiB} MiB with `Content-Range` (sent with sendfile(2) over "
        "one keep-alive connection, each following the returned Location) and the closing "
        "PUT; the pull times `curl -o /dev/null` of the blob. Manifest GET throughput and p99 "
        f"latency come from `wrk --latency -t{settings.wrk_threads} "
        f"-c{settings.wrk_connections} -d{settings.wrk_duration}s` with a Lua script setting "
        "an OCI/Docker Accept header, against a tagged OCI image manifest. wrk 4.1 cannot "
        "measure HEAD (its parser waits for the Content-Length bytes of body a HEAD response "
        "never sends, wrk issue #198), so HEAD uses ApacheBench with the same concurrency, "
        f"duration and Accept header: `ab -k -i -c{settings.wrk_connections} "
        f"-t{settings.wrk_duration}` (p99 from its CSV percentiles). ab is single-threaded, so "
        "compare HEAD across servers, not against the GET row. Any non-2xx answer or socket "
        "error fails the run. The skopeo scenario builds an OCI "
        f"layout of {settings.layer_count} gzip layers of {settings.layer_size // MiB} MiB "
        "random content (fresh for every run, so no blob is already known), times "
        "`skopeo copy oci:DIR:v1 docker://127.0.0.1:PORT/...` and then the copy back into a "
        "fresh OCI directory. Client and servers share the machine's 2 cores, so the "
        "client's own CPU use is part of every number, equally for both servers.",
        "",
        "## Raw values per round",
        "",
        raw_values(results),
        "",
    ]
    if notes:
        parts += ["## Failures and notes", "", notes, ""]
    if any(logs.values()):
        parts += ["## Server logs (last lines, log level warn)", ""]
        for name in SERVERS:
            text = logs.get(name, "").replace("```", "'''")
            if text:
                parts += [f"{name}:", "", "```", text, "```", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------


def check_tools(settings: Settings) -> None:
    needed = {"curl", "wrk", "ab", "skopeo", settings.distribution_cmd[0], settings.dockyard_cmd[0]}
    missing = sorted(tool for tool in needed if shutil.which(tool) is None)
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so the servers are stopped by `finally` blocks."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    check_tools(settings)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=settings.tmp_parent))
    servers = {
        DISTRIBUTION: Server(DISTRIBUTION, settings.distribution_cmd, workdir / DISTRIBUTION),
        DOCKYARD: Server(DOCKYARD, settings.dockyard_cmd, workdir / DOCKYARD),
    }
    with terminate_on_signals():
        try:
            info = machine_info(settings)
            blob: Blob | None = None
            if {"monolithic", "chunked", "pull"} & set(settings.scenarios):
                log(f"generating a {settings.blob_size // MiB} MiB random blob in {workdir}")
                blob = make_blob(workdir, settings.blob_size)
            for server in servers.values():
                log(f"starting {server.name}: {' '.join(server.command)}")
                server.start()
                log(f"  {server.name} listening on {server.base}")
            results = run_rounds(settings, servers, blob, workdir)
        except BenchError as exc:
            log(f"benchmark aborted: {exc}")
            return 2
        finally:
            for server in servers.values():
                server.stop()
            logs = {name: server.log_summary() for name, server in servers.items()}
            if settings.keep_tmp:
                log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    text = report(settings, results, servers, info, started, time.monotonic() - clock, logs)
    print()
    print(results_table(results, settings))
    print()
    print(cpu_table(results))
    notes = failure_notes(results, servers)
    if notes:
        print("\nFailures and notes:\n" + notes)
    if settings.out is not None:
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(text)
        log(f"wrote {settings.out}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
