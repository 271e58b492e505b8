#!/usr/bin/env python3
"""Several registry instances over one S3 bucket behind nginx: how throughput scales.

    python benchmarks/scaling.py                        # 1, 2 and 3 instances, 3 rounds
    python benchmarks/scaling.py --quick                # 1 and 2 instances, small sizes
    python benchmarks/scaling.py --output /tmp/scaling.md

For each registry and instance count: that many dockyards (`http.workers: 1` each, the
store under one key prefix of the bucket, the index in one PostgreSQL database, a local
index directory of each one's own), or that many distribution 2.8.2 (one key prefix of its
own, no database), behind nginx spreading requests round-robin with no affinity. Blob GETs
are proxied, not redirected (`storage.redirect.disable: true` on both), so the pull goes
through the registries. Measured through nginx, medians of `--rounds`:

- manifest GET by tag: wrk, `--wrk-connections` connections, `--wrk-seconds`; req/s, p99
- a `--blob-mib` blob pushed (POST, `--chunk-mib` PATCHes, PUT), MB/s; the requests of
  one push land on different instances
- its pull (GET), MB/s

Then the cost of the listing cache's cross-instance check: the tags list of a repository of
`--tags` tags (wrk, `--list-connections`) from one dockyard with the SQLite index and one
with the PostgreSQL index (which asks the database for a commit counter on every listing).

The S3 server is a private Ceph radosgw started here (or the S3 that DOCKYARD_TEST_S3_*
name), PostgreSQL a private server (or DOCKYARD_TEST_POSTGRES_DSN). Everything runs on this
machine and shares its CPUs; the table says how busy each part was.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockbench.clients import Client, curl_download, expect, run_wrk
from dockbench.common import DISTRIBUTION, DOCKYARD, HOST, MANIFEST_ACCEPT, BenchError, MiB, log
from dockbench.pgindex import IndexDatabases, index_databases
from dockbench.procs import process_tree_cpu
from dockbench.s3store import S3Endpoint, delete_prefix, objectstore_for, radosgw_cpu, s3_endpoint
from dockbench.scenarios_blobs import Blob, chunked_push_to, make_blob
from dockbench.scenarios_metadata import push_small_image
from dockbench.servers import INDEX_DONE, S3Storage, Server, free_port, stop_process_group

MANIFEST_REPO = "scale/manifest"
TAGS_REPO = "scale/tags"

NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    upstream registries {{
        {servers}
        keepalive 64;
    }}
    server {{
        listen {host}:{port};
        client_max_body_size 0;
        location /v2/ {{
            proxy_pass http://registries;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 900;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    """nginx, round-robin over the instances, keeping connections to them alive."""

    workdir: Path
    upstreams: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user="user root root;\n" if os.geteuid() == 0 else "", work=self.workdir,
            servers=" ".join(f"server {each};" for each in self.upstreams), host=HOST,
            port=self.port))
        with (self.workdir / "stderr.log").open("ab") as log_file:
            self.process = subprocess.Popen(
                ["nginx", "-p", str(self.workdir), "-c", str(conf)], stdout=log_file,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError("nginx exited: " + (self.workdir / "stderr.log").read_text())
            client = Client(self.port, timeout=2)
            with contextlib.suppress(BenchError):
                if client.request("GET", "/v2/").status in (200, 401):
                    client.close()
                    return
            client.close()
            time.sleep(0.1)
        raise BenchError("nginx did not answer /v2/ within 30 s")

    def cpu_seconds(self) -> float:
        return process_tree_cpu(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None


@dataclass
class Options:
    instances: list[int]
    rounds: int
    blob_size: int
    chunk_size: int
    wrk_seconds: int
    wrk_connections: int
    list_connections: int
    tags: int
    output: Path | None
    keep_tmp: bool
    objectstore: str
    command_line: str
    dockyard_cmd: list[str]
    distribution_cmd: list[str]


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 2 instances, 1 round, 64 MiB blob, 3 s wrk, 100 tags")
    parser.add_argument("--instances", help="comma-separated counts (default 1,2,3)")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 3)")
    parser.add_argument("--blob-mib", type=int, help="pushed and pulled blob (default 256)")
    parser.add_argument("--chunk-mib", type=int, default=16, help="PATCH size (default 16)")
    parser.add_argument("--wrk-seconds", type=int, help="wrk duration (default 10)")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--list-connections", type=int, default=8,
                        help="wrk connections for the tags list (default 8)")
    parser.add_argument("--tags", type=int, help="tags of the listed repository (default 500)")
    parser.add_argument("--s3-objectstore", choices=("auto", "memstore", "bluestore"),
                        default="auto")
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--dockyard-cmd", default=f"{sys.executable} -m dockyard serve {{config}}")
    parser.add_argument("--distribution-cmd", default="docker-registry serve {config}")
    args = parser.parse_args(argv)
    quick = bool(args.quick)

    def sized(value: int | None, full: int, small: int) -> int:
        return int(value) if value is not None else (small if quick else full)

    counts = [int(part) for part in (args.instances or ("1,2" if quick else "1,2,3")).split(",")]
    if not counts or not all(1 <= count <= 8 for count in counts):
        parser.error("--instances: counts between 1 and 8")
    options = Options(
        instances=counts, rounds=sized(args.rounds, 3, 1),
        blob_size=sized(args.blob_mib, 256, 64) * MiB, chunk_size=int(args.chunk_mib) * MiB,
        wrk_seconds=sized(args.wrk_seconds, 10, 3), wrk_connections=int(args.wrk_connections),
        list_connections=int(args.list_connections), tags=sized(args.tags, 500, 100),
        output=args.output, keep_tmp=bool(args.keep_tmp), objectstore=args.s3_objectstore,
        command_line=" ".join(["python", "benchmarks/scaling.py", *map(shlex.quote, argv)]),
        dockyard_cmd=shlex.split(args.dockyard_cmd),
        distribution_cmd=shlex.split(args.distribution_cmd))
    if not (1 <= options.rounds <= 20 and 1 <= options.tags <= 10_000):
        parser.error("--rounds 1-20, --tags 1-10000")
    return options


# ---- CPU accounting: who was busy during a measurement


@dataclass
class CpuWatch:
    """CPU seconds of the parts of a set-up, read before and after an action."""

    parts: dict[str, Callable[[], float]]

    def during(self, action: Callable[[], float]) -> tuple[float, float, dict[str, float]]:
        """Run `action`; (its result, wall seconds, cores each part kept busy)."""
        before = {name: read() for name, read in self.parts.items()}
        total_before = machine_cpu_seconds()
        started = time.perf_counter()
        result = action()
        wall = time.perf_counter() - started
        busy = {name: (read() - before[name]) / wall for name, read in self.parts.items()}
        busy["machine"] = (machine_cpu_seconds() - total_before) / wall
        return result, wall, busy


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(value) for value in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(databases: IndexDatabases) -> Callable[[], float]:
    server = databases.server
    if server is None or server.data_dir is None:
        return lambda: 0.0
    pid_file = server.data_dir / "postmaster.pid"

    def read() -> float:
        with contextlib.suppress(OSError, ValueError):
            return process_tree_cpu(int(pid_file.read_text().splitlines()[0]))
        return 0.0

    return read


# ---- one set-up: N instances of one registry behind nginx


@dataclass
class Cluster:
    kind: str
    instances: list[Server]
    balancer: Balancer
    watch: CpuWatch


@dataclass
class Row:
    kind: str
    count: int
    values: dict[str, list[float]] = field(default_factory=dict)
    busy: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def add(self, metric: str, value: float, busy: dict[str, float] | None = None) -> None:
        self.values.setdefault(metric, []).append(value)
        if busy is not None:
            self.busy.setdefault(metric, []).append(busy)

    def median(self, metric: str) -> float | None:
        got = self.values.get(metric)
        return statistics.median(got) if got else None

    def busy_median(self, metric: str, part: str) -> float | None:
        got = [each[part] for each in self.busy.get(metric, []) if part in each]
        return statistics.median(got) if got else None


def wait_index_built(instances: list[Server], timeout: float = 600.0) -> None:
    """One dockyard of the set builds the (shared) index at start: wait for its log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in instances:
            with contextlib.suppress(OSError):
                if INDEX_DONE.search(server.log_path.read_text(errors="replace")):
                    return
        time.sleep(0.2)
    raise BenchError("no dockyard instance logged 'index: built'")


@contextlib.contextmanager
def cluster(kind: str, count: int, options: Options, endpoint: S3Endpoint,
            databases: IndexDatabases, workdir: Path) -> Iterator[Cluster]:
    root = endpoint.root(f"scale-{kind}-{count}")
    command = options.dockyard_cmd if kind == DOCKYARD else options.distribution_cmd
    dsn = databases.dsn(f"scale_{count}") if kind == DOCKYARD else None
    instances = [Server(kind, command, workdir / f"{kind}-{count}-{n}",
                        s3=S3Storage(endpoint, root, redirect_disabled=True),
                        database=dsn, log_index=True, workers=1)
                 for n in range(count)]
    balancer = Balancer(workdir / f"nginx-{kind}-{count}",
                        [f"{HOST}:{free_port()}" for _ in instances])
    try:
        for server, upstream in zip(instances, balancer.upstreams, strict=True):
            server.start(int(upstream.rsplit(":", 1)[1]))
        if kind == DOCKYARD:
            wait_index_built(instances)
        balancer.start()
        parts: dict[str, Callable[[], float]] = {
            "registries": lambda: sum(server.cpu_seconds() for server in instances),
            "nginx": balancer.cpu_seconds,
            "s3": lambda: radosgw_cpu(endpoint),
            "postgres": postgres_cpu(databases),
        }
        yield Cluster(kind, instances, balancer, CpuWatch(parts))
    finally:
        balancer.stop()
        for server in instances:
            server.stop()
        delete_prefix(endpoint, root.lstrip("/") + "/")


def remove_blob(cluster_: Cluster, endpoint: S3Endpoint, blob: Blob, repo: str) -> None:
    """Untimed: the blob forgotten (DELETE through nginx, then its objects), so that the
    next push writes it afresh."""
    client = Client(cluster_.balancer.port, timeout=120)
    try:
        client.request("DELETE", f"/v2/{repo}/blobs/{blob.digest}")
    finally:
        client.close()
    root = cluster_.instances[0].s3.root if cluster_.instances[0].s3 else ""
    key = endpoint.blob_key(root, blob.digest)
    delete_prefix(endpoint, key.rsplit("/", 1)[0] + "/")


def measure_cluster(cl: Cluster, row: Row, options: Options, endpoint: S3Endpoint,
                    blob: Blob, workdir: Path) -> None:
    port, base = cl.balancer.port, cl.balancer.base
    client = Client(port, timeout=120)
    try:
        push_small_image(client, MANIFEST_REPO, "latest")
    finally:
        client.close()
    url = f"{base}/v2/{MANIFEST_REPO}/manifests/latest"
    script = workdir / "manifest.lua"
    # Untimed warm-up: every instance has served some requests, nginx holds connections.
    run_wrk(url, {"Accept": MANIFEST_ACCEPT}, script, 2, 2, options.wrk_connections)
    repo = "scale/blob"
    got: dict[str, float] = {}

    def wrk() -> float:
        got.update(run_wrk(url, {"Accept": MANIFEST_ACCEPT}, script, options.wrk_seconds,
                           2, options.wrk_connections))
        return got["rps"]

    for round_no in range(options.rounds):
        rps, _, busy = cl.watch.during(wrk)
        row.add("manifest_rps", rps, busy)
        row.add("manifest_p99", got["p99_ms"])
        if round_no:
            remove_blob(cl, endpoint, blob, repo)
        seconds, _, busy = cl.watch.during(
            lambda: chunked_push_to(port, blob, repo, options.chunk_size))
        row.add("push_mbs", blob.size / seconds / 1e6, busy)
        mbs, _, busy = cl.watch.during(
            lambda: curl_download(f"{base}/v2/{repo}/blobs/{blob.digest}", blob.size))
        row.add("pull_mbs", mbs, busy)
        log(f"  {cl.kind:12} x{len(cl.instances)} round {round_no + 1}: manifest "
            f"{rps:,.0f} req/s (p99 {got['p99_ms']:.1f} ms), push "
            f"{row.values['push_mbs'][-1]:.0f} MB/s, pull {mbs:.0f} MB/s")


# ---- the listing cache's check: one dockyard, SQLite vs PostgreSQL index


def tag_many(server: Server, count: int) -> None:
    """Untimed: one small image, tagged `count` times."""
    client = Client(server.port, timeout=120)
    try:
        push_small_image(client, TAGS_REPO, "t0")
        manifest = expect(client.request("GET", f"/v2/{TAGS_REPO}/manifests/t0",
                                         headers={"Accept": MANIFEST_ACCEPT}), (200,), "GET")
        kind = manifest.header("content-type")
        for n in range(1, count):
            expect(client.request("PUT", f"/v2/{TAGS_REPO}/manifests/t{n}", body=manifest.body,
                                  headers={"Content-Type": kind}), (201,), f"PUT tag t{n}")
        listed = expect(client.request("GET", f"/v2/{TAGS_REPO}/tags/list"), (200,), "tags")
        if len(json.loads(listed.body).get("tags") or []) != count:
            raise BenchError(f"tags list of {server.name}: not {count} tags")
    finally:
        client.close()


def measure_listing(options: Options, endpoint: S3Endpoint, databases: IndexDatabases,
                    workdir: Path) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    servers: dict[str, Server] = {}
    try:
        for index in ("sqlite", "postgres"):
            server = Server(DOCKYARD, options.dockyard_cmd, workdir / f"tags-{index}",
                            s3=S3Storage(endpoint, endpoint.root(f"tags-{index}"),
                                         redirect_disabled=True),
                            database=databases.dsn("tags") if index == "postgres" else None,
                            log_index=True, workers=1)
            servers[index] = server
            server.start()
            server.wait_index_built(600)
            tag_many(server, options.tags)
            rows[index] = Row(index, 1)
        url_script = workdir / "tags.lua"
        for round_no in range(options.rounds):
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for index in order:
                server = servers[index]
                watch = CpuWatch({"registries": server.cpu_seconds,
                                  "postgres": postgres_cpu(databases)})
                got: dict[str, float] = {}

                def wrk(s: Server = server, box: dict[str, float] = got) -> float:
                    box.update(run_wrk(f"{s.base}/v2/{TAGS_REPO}/tags/list", {}, url_script,
                                       options.wrk_seconds, 2, options.list_connections,
                                       timeout_s=30))
                    return box["rps"]

                rps, _, busy = watch.during(wrk)
                rows[index].add("tags_rps", rps, busy)
                rows[index].add("tags_p99", got["p99_ms"])
                log(f"  tags list, {index} index: {rps:,.0f} req/s, p99 "
                    f"{got['p99_ms']:.1f} ms")
    finally:
        for index, server in servers.items():
            server.stop()
            delete_prefix(endpoint, endpoint.root(f"tags-{index}").lstrip("/") + "/")
    return rows


# ---- the report


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def busy_cell(row: Row, metric: str) -> str:
    parts = [(part, row.busy_median(metric, part))
             for part in ("registries", "nginx", "s3", "postgres", "machine")]
    return " / ".join(fmt(value, 2) for _, value in parts)


def report(options: Options, rows: list[Row], listing: dict[str, Row], facts: list[str]
           ) -> str:
    lines = [
        "### Several instances behind nginx (S3 + PostgreSQL)",
        "",
        f"`{options.command_line}`",
        "",
        *[f"- {fact}" for fact in facts],
        "",
        f"Medians of {options.rounds} round(s). Manifest GET by tag: wrk, "
        f"{options.wrk_connections} connections, {options.wrk_seconds} s. Push: "
        f"{options.blob_size // MiB} MiB blob, POST + {options.chunk_size // MiB} MiB PATCHes + "
        "PUT over one keep-alive connection to nginx (its requests land on different "
        "instances). Pull: GET through nginx, blob redirects off on both registries.",
        "",
        "| registry | instances | manifest GET req/s | p99 ms | push MB/s | pull MB/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.kind} | {row.count} | {fmt(row.median('manifest_rps'))} | "
            f"{fmt(row.median('manifest_p99'), 1)} | {fmt(row.median('push_mbs'))} | "
            f"{fmt(row.median('pull_mbs'))} |")
    lines += [
        "",
        "Cores kept busy (CPU seconds / wall seconds, medians): the registry instances "
        "together / nginx / the S3 server (Ceph daemons) / PostgreSQL / the whole machine "
        "(everything, wrk, curl and other users included).",
        "",
        "| registry | instances | during manifest GETs | during the push | during the pull |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row.kind} | {row.count} | {busy_cell(row, 'manifest_rps')} | "
                     f"{busy_cell(row, 'push_mbs')} | {busy_cell(row, 'pull_mbs')} |")
    if listing:
        lines += [
            "",
            f"Tags list of a {options.tags}-tag repository from one dockyard (`http.workers: "
            f"1`, on S3, served from its listing cache), wrk, {options.list_connections} "
            f"connections, {options.wrk_seconds} s, medians of {options.rounds}; with the "
            "PostgreSQL index each listing asks the database for its commit counter first.",
            "",
            "| index | req/s | p99 ms | cores: dockyard / PostgreSQL |",
            "| --- | ---: | ---: | --- |",
        ]
        for index, row in listing.items():
            lines.append(
                f"| {index} | {fmt(row.median('tags_rps'))} | {fmt(row.median('tags_p99'), 1)} "
                f"| {fmt(row.busy_median('tags_rps', 'registries'), 2)} / "
                f"{fmt(row.busy_median('tags_rps', 'postgres'), 2)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    for tool in ("wrk", "curl", "nginx", options.dockyard_cmd[0], options.distribution_cmd[0]):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing tool: {tool}")
    started_at = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-scaling-"))
    run_bytes = 4 * options.blob_size + 2 * 1024 * MiB
    rows: list[Row] = []
    listing: dict[str, Row] = {}
    load_before = os.getloadavg()
    try:
        blob = make_blob(workdir, options.blob_size)
        with s3_endpoint(workdir, objectstore_for(options.objectstore, run_bytes),
                         run_bytes) as endpoint, index_databases("postgres") as databases:
            for count in options.instances:
                for kind in (DOCKYARD, DISTRIBUTION):
                    log(f"{kind} x{count} behind nginx")
                    row = Row(kind, count)
                    with cluster(kind, count, options, endpoint, databases, workdir) as cl:
                        measure_cluster(cl, row, options, endpoint, blob, workdir)
                    rows.append(row)
            log("tags list: one dockyard with the SQLite index, one with the PostgreSQL one")
            listing = measure_listing(options, endpoint, databases, workdir)
            s3_name = endpoint.name
    except BenchError as exc:
        log(f"aborted: {exc}")
        return 2
    finally:
        if options.keep_tmp:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    rows.sort(key=lambda row: (row.kind != DOCKYARD, row.count))
    facts = [
        f"{started_at:%Y-%m-%d %H:%M} UTC, {(time.monotonic() - clock) / 60:.0f} min; "
        f"{os.cpu_count()} CPUs, shared by everything here: the registries, nginx "
        f"(1 worker), the S3 server ({s3_name}), PostgreSQL, wrk and curl, and other users "
        f"of the machine (load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
        "after)",
        "dockyard: `http.workers: 1` per instance, one PostgreSQL database for the index, "
        "a local index directory each; distribution 2.8.2: one process per instance (Go, "
        "it uses every CPU); each registry under its own key prefix of one bucket",
    ]
    text = report(options, rows, listing, facts)
    print()
    print(text)
    if options.output is not None:
        options.output.write_text(text)
        log(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
