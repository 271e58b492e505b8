#!/usr/bin/env python3
"""How long a registry keeps its port closed when it starts on a large store.

    python benchmarks/startup.py [--repositories 10000,100000] [--rounds 3] [--output FILE]
    python benchmarks/startup.py --quick          # 2,000 repositories, to try it

Writes, once per size, a store of N repositories in distribution's layout (one small image
per repository under a tag of its own, its config, layer and manifest blobs shared by every
repository), then, each case on its own `cp -a` copy of it, times from the process start
until `GET /v2/` answers 200 (median, min and max of `--rounds` start-ups):

- distribution 2.8.2 (`docker-registry serve`);
- dockyard, first start on the store (never indexed), SQLite index and PostgreSQL index;
- dockyard, restart with the index complete, SQLite and PostgreSQL.

Only start-up is repeated. Once per case it also records how long the background build
(first start) or re-check (restart) takes after the port opened, the index's size (SQLite
file, PostgreSQL `pg_database_size`), and whether, while the build runs, `GET
/v2/_catalog?n=100` gives the store's first 100 names and one random repository's
`tags/list` is right (and how long each took). PostgreSQL is a private server of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockbench.common import (
    HOST,
    NA,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    BenchError,
    log,
)
from dockbench.servers import free_port, stop_process_group
from dockbench.storegen import copy_store

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
BUILT = "index: built"
RESYNCED_AT = "index_resynced_at"  # the meta key the background re-check sets when done
START_TIMEOUT = 900.0
BUILD_TIMEOUT = 3600.0


# --- the store ----------------------------------------------------------------------------

def repository_name(number: int) -> str:
    return f"bench/r{number:06d}"


def tag_of(number: int) -> str:
    return f"v{number}"


@dataclass(frozen=True)
class SharedImage:
    """The one image every repository of the store holds."""

    manifest: bytes
    config_digest: str
    layer_digest: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def write_store(root: Path, repositories: int) -> SharedImage:
    """N repositories in distribution's layout, each one image under a tag of its own; the
    config, layer and manifest blobs are the same for all (only links are per repository)."""
    v2 = root / "docker" / "registry" / "v2"
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
                        ).encode()
    layer = os.urandom(512)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        hexpart = hashlib.sha256(data).hexdigest()
        blobs[hexpart] = data
        return hexpart

    config_hex, layer_hex = blob(config), blob(layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": f"sha256:{config_hex}",
                   "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{layer_hex}",
                    "size": len(layer)}],
    }).encode()
    manifest_hex = blob(manifest)
    for hexpart, data in blobs.items():
        directory = v2 / "blobs" / "sha256" / hexpart[:2] / hexpart
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(data)

    def link(directory: str, hexpart: str) -> None:
        os.makedirs(directory)
        with open(os.path.join(directory, "link"), "w") as handle:
            handle.write(f"sha256:{hexpart}")

    base = str(v2 / "repositories")
    for number in range(repositories):
        repo = os.path.join(base, repository_name(number))
        link(f"{repo}/_layers/sha256/{config_hex}", config_hex)
        link(f"{repo}/_layers/sha256/{layer_hex}", layer_hex)
        link(f"{repo}/_manifests/revisions/sha256/{manifest_hex}", manifest_hex)
        tag = f"{repo}/_manifests/tags/{tag_of(number)}"
        link(f"{tag}/current", manifest_hex)
        link(f"{tag}/index/sha256/{manifest_hex}", manifest_hex)
    return SharedImage(manifest, f"sha256:{config_hex}", f"sha256:{layer_hex}")


async def fill_index(index: Any, root: Path, repositories: int, image: SharedImage) -> None:
    """What a build from that store writes, through the index's own API (faster than a
    build: for timing a restart where the build itself would take too long)."""
    from dockyard.index.base import RepositoryContents
    from dockyard.registry.reindex import describe_manifest
    from dockyard.storage.filesystem import FilesystemDriver

    record = await describe_manifest(FilesystemDriver(str(root)), repository_name(0),
                                     image.digest)
    assert record is not None
    try:
        for start in range(0, repositories, 5000):
            async with index.writing() as db:
                for number in range(start, min(start + 5000, repositories)):
                    await db.replace_repository(RepositoryContents(
                        repository_name(number), {tag_of(number): image.digest}, [record],
                        [image.config_digest, image.layer_digest]))
        await index.mark_complete()
    finally:
        await index.aclose()


# --- servers ------------------------------------------------------------------------------

def get(port: int, path: str, timeout: float = 600) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    launched: float  # time.monotonic() at Popen
    launched_wall: float  # time.time() at Popen
    ready: float = 0.0  # seconds from launch until /v2/ answered 200
    stopped: float = 0.0  # seconds from SIGTERM until the server exited

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def config_text(root: Path, port: int, dsn: str | None) -> str:
    settings: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "secret": "startup-benchmark"},
    }
    if dsn is not None:
        settings["database"] = {"enabled": True, "dsn": dsn}
    return json.dumps(settings)  # JSON is YAML


def dockyard_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "dockyard", "serve", str(config)]


def distribution_command(config: Path) -> list[str]:
    return [DISTRIBUTION_BINARY, "serve", str(config)]


@contextmanager
def serving(workdir: Path, root: Path, command: Callable[[Path], list[str]],
            dsn: str | None = None, label: str = "server") -> Iterator[Running]:
    """Start a server on `root` and wait until `/v2/` answers 200; stop it when done."""
    port = free_port()
    config = workdir / f"{label}-{port}.yml"
    config.write_text(config_text(root, port, dsn))
    log_path = workdir / f"{label}-{port}.log"
    environment = dict(os.environ)
    environment.pop("AWS_CA_BUNDLE", None)
    with log_path.open("wb") as log_file:
        launched_wall = time.time()
        launched = time.monotonic()
        process = subprocess.Popen(command(config), stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=environment,
                                   start_new_session=True)
    running = Running(process, port, log_path, launched, launched_wall)
    try:
        while True:
            if process.poll() is not None:
                raise BenchError(f"{label} exited during start-up:\n{running.logs()[-3000:]}")
            try:
                if get(port, "/v2/", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - launched > START_TIMEOUT:
                raise BenchError(f"{label} did not answer /v2/ in {START_TIMEOUT:.0f}s")
            time.sleep(0.01)
        running.ready = time.monotonic() - launched
        yield running
    finally:
        stopping = time.monotonic()
        stop_process_group(process)
        running.stopped = time.monotonic() - stopping


def wait_for(what: str, done: Callable[[], bool], running: Running) -> float:
    """Seconds from the port opening until `done()`."""
    while not done():
        if running.process.poll() is not None:
            raise BenchError(f"the server exited before {what}:\n{running.logs()[-3000:]}")
        if time.monotonic() - running.launched > BUILD_TIMEOUT:
            raise BenchError(f"{what} did not happen in {BUILD_TIMEOUT:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - running.launched - running.ready


# --- the index, as the benchmark looks at it ------------------------------------------------

class IndexProbe:
    """Where the index is and how to read its size and the re-check's finishing time."""

    def dsn(self) -> str | None:
        return None

    def reset(self) -> None:
        """Make the store never indexed."""

    def resynced_at(self) -> float:
        return 0.0

    def size(self) -> int:
        return 0

    def open(self) -> Any:
        """The index, for filling it directly."""
        raise NotImplementedError


class SQLiteProbe(IndexProbe):
    def __init__(self, root: Path) -> None:
        self.directory = root / "dockyard"
        self.path = self.directory / "index.sqlite"

    def reset(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def resynced_at(self) -> float:
        if not self.path.exists():
            return 0.0
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (RESYNCED_AT,)).fetchone()
        return float(row[0]) if row else 0.0

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.directory.glob("index.sqlite*"))

    def open(self) -> Any:
        from dockyard.index.sqlite import open_index

        return open_index(str(self.directory.parent))


class PostgresProbe(IndexProbe):
    def __init__(self, server: Any, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self._dsn = ""

    def dsn(self) -> str:
        return self._dsn

    def reset(self) -> None:
        """A new, migrated, empty database (`dockyard index migrate`)."""
        self._dsn = self.server.new_database()
        config = self.workdir / "migrate.yml"
        config.write_text(config_text(self.workdir / "unused", 5000, self._dsn))
        done = subprocess.run([sys.executable, "-m", "dockyard", "index", "migrate",
                               str(config)], capture_output=True, text=True, timeout=300,
                              check=False)
        if done.returncode != 0:
            raise BenchError(f"dockyard index migrate: {done.stdout}{done.stderr}")

    def _query(self, sql: str, *parameters: Any) -> Any:
        import psycopg

        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute(sql, parameters).fetchone()
        return row[0] if row else None

    def resynced_at(self) -> float:
        value = self._query("SELECT value FROM meta WHERE key = %s", RESYNCED_AT)
        return float(value) if value else 0.0

    def size(self) -> int:
        return int(self._query("SELECT pg_database_size(current_database())"))

    def open(self) -> Any:
        from dockyard.index.postgres import PostgresIndex

        return PostgresIndex(self._dsn)


# --- measurements -------------------------------------------------------------------------

@dataclass
class Row:
    case: str
    starts: list[float] = field(default_factory=list)
    background: str = NA  # build or re-check after the port opened
    index_size: str = NA
    during_build: str = NA
    stops: list[float] = field(default_factory=list)


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"
            if values else NA)


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def check_during_build(running: Running, names: list[str], rng: random.Random) -> str:
    """The first catalog page and one repository's tags, asked for as soon as the port
    opened: right or not, how long each took, and whether the build was still running."""
    started = time.monotonic()
    status, body = get(running.port, "/v2/_catalog?n=100")
    catalog_took = time.monotonic() - started
    catalog_ok = status == 200 and json.loads(body)["repositories"] == names[:100]
    number = rng.randrange(len(names))
    started = time.monotonic()
    status, body = get(running.port, f"/v2/{repository_name(number)}/tags/list")
    tags_took = time.monotonic() - started
    tags_ok = status == 200 and json.loads(body) == {"name": repository_name(number),
                                                      "tags": [tag_of(number)]}
    building = BUILT not in running.logs()
    return (f"catalog {'right' if catalog_ok else 'WRONG'} {catalog_took:.2f} s, tags "
            f"{'right' if tags_ok else 'WRONG'} {tags_took:.2f} s"
            f"{'' if building else ' (build had already finished)'}")


def measure_distribution(workdir: Path, root: Path, rounds: int) -> Row:
    row = Row("distribution 2.8.2")
    for number in range(rounds):
        with serving(workdir, root, distribution_command, label="distribution") as running:
            row.starts.append(running.ready)
        row.stops.append(running.stopped)
        log(f"  distribution start {number + 1}: {running.ready:.2f}s")
    return row


def measure_dockyard(workdir: Path, root: Path, probe: IndexProbe, label: str, rounds: int,
                     names: list[str], rng: random.Random, image: SharedImage,
                     startup_only: bool) -> tuple[Row, Row]:
    first = Row(f"dockyard {label}, first start")
    for number in range(rounds):
        probe.reset()
        with serving(workdir, root, dockyard_command, probe.dsn(), "dockyard") as running:
            first.starts.append(running.ready)
            log(f"  {label} first start {number + 1}: {running.ready:.2f}s")
            if number == rounds - 1 and not startup_only:  # the build, once
                first.during_build = check_during_build(running, names, rng)
                took = wait_for("the build", lambda: BUILT in running.logs(), running)
                first.background = f"build {took:.1f} s"
                first.index_size = mib(probe.size())
                log(f"  {label} built in {took:.1f}s; {first.during_build}")
        first.stops.append(running.stopped)
    restart = Row(f"dockyard {label}, restart (index complete)")
    if startup_only:
        probe.reset()
        started = time.monotonic()
        asyncio.run(fill_index(probe.open(), root, len(names), image))
        restart.background = f"not timed (index filled through its API in " \
                             f"{time.monotonic() - started:.0f} s)"
        restart.index_size = mib(probe.size())
    for number in range(rounds):
        with serving(workdir, root, dockyard_command, probe.dsn(), "dockyard") as running:
            restart.starts.append(running.ready)
            log(f"  {label} restart {number + 1}: {running.ready:.2f}s")
            if number == 0 and not startup_only:  # the re-check, once
                took = wait_for("the re-check",
                                lambda: probe.resynced_at() >= running.launched_wall, running)
                restart.background = f"re-check {took:.1f} s"
                restart.index_size = mib(probe.size())
                log(f"  {label} re-checked in {took:.1f}s")
        restart.stops.append(running.stopped)
    return first, restart


def remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=True, timeout=3600)


def run_size(scratch: Path, repositories: int, rounds: int, postgres: Any,
             parts: dict[str, float], startup_only: bool) -> list[Row]:
    scratch.mkdir(parents=True, exist_ok=True)
    source = scratch / f"source-{repositories}"
    started = time.monotonic()
    image = write_store(source, repositories)
    parts[f"write store ({repositories:,})"] = time.monotonic() - started
    log(f"{repositories:,} repositories written in {parts[f'write store ({repositories:,})']:.0f}s")
    names = sorted(repository_name(number) for number in range(repositories))
    rng = random.Random(repositories)
    rows: list[Row] = []
    cases: list[tuple[str, Callable[[Path, Path], list[Row]]]] = [
        ("distribution", lambda workdir, root: [measure_distribution(workdir, root, rounds)]),
        ("SQLite", lambda workdir, root: list(measure_dockyard(
            workdir, root, SQLiteProbe(root), "SQLite", rounds, names, rng, image,
            startup_only))),
        ("PostgreSQL", lambda workdir, root: list(measure_dockyard(
            workdir, root, PostgresProbe(postgres, workdir), "PostgreSQL", rounds, names,
            rng, image, startup_only))),
    ]
    for name, measure in cases:
        workdir = scratch / f"{name}-{repositories}"
        workdir.mkdir()
        root = workdir / "store"
        started = time.monotonic()
        copy_store(source, root)
        parts[f"cp -a ({repositories:,}, {name})"] = time.monotonic() - started
        started = time.monotonic()
        rows += measure(workdir, root)
        parts[f"{name} ({repositories:,})"] = time.monotonic() - started
        log(f"{name} done in {parts[f'{name} ({repositories:,})']:.0f}s")
        started = time.monotonic()
        remove(workdir)
        parts[f"rm -rf ({repositories:,}, {name})"] = time.monotonic() - started
    remove(source)
    return rows


def table(results: dict[int, list[Row]], rounds: int) -> str:
    lines = [f"| repositories | case | until `/v2/` answers 200, median of {rounds} (min-max) "
             "| in the background after | index size | while the index builds "
             "| SIGTERM to exit, median (max) |",
             "| ---: | --- | --- | --- | --- | --- | --- |"]
    for repositories, rows in results.items():
        for row in rows:
            lines.append(f"| {repositories:,} | {row.case} | {spread(row.starts)} | "
                         f"{row.background} | {row.index_size} | {row.during_build} | "
                         f"{statistics.median(row.stops):.2f} s ({max(row.stops):.2f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", default="10000,100000",
                        help="comma-separated store sizes (default 10000,100000)")
    parser.add_argument("--rounds", type=int, default=3, help="start-ups per case")
    parser.add_argument("--quick", action="store_true", help="2,000 repositories only")
    parser.add_argument("--startup-only", type=lambda text: {int(part) for part in
                                                              text.split(",")},
                        default=set(), metavar="SIZES",
                        help="for these sizes only time the start-ups: no wait for the "
                             "build or re-check, the restarts' index filled through its API")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="directory for the stores (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the table, with the command line, to this file")
    arguments = parser.parse_args()
    sizes = [2000] if arguments.quick else [int(part) for part in
                                           arguments.repositories.split(",")]
    from tests.support.postgres import run_postgres

    parts: dict[str, float] = {}
    results: dict[int, list[Row]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="startup-", dir=arguments.scratch) as scratch, \
            run_postgres() as postgres:
        for repositories in sizes:
            results[repositories] = run_size(Path(scratch) / str(repositories), repositories,
                                             arguments.rounds, postgres, parts,
                                             repositories in arguments.startup_only)
    parts["total"] = time.monotonic() - started
    command = shlex.join(["python", "benchmarks/startup.py", *sys.argv[1:]])
    report = "\n".join([
        f"`{command}`", "", table(results, arguments.rounds), "",
        "Durations: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in parts.items()),
    ])
    print(report)
    if arguments.output is not None:
        arguments.output.write_text(report + "\n")


if __name__ == "__main__":
    main()
