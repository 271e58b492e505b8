"""The whole run: start what is needed, run the phases, stop everything, write the report."""

from __future__ import annotations

import contextlib
import datetime
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .common import DISTRIBUTION, DOCKYARD, BenchError, GiB, MiB, log
from .machine import machine_info, tool_version
from .measure import Results
from .pgindex import index_databases
from .phase_downloads import run_downloads_phase
from .phase_main import MainPhase, record_idle_memory, run_main_rounds
from .phase_s3 import S3Run, run_s3_gc, run_s3_main
from .phase_stores import run_gc_phase, run_metadata_phase
from .procs import MemorySampler
from .report import cpu_table, failure_notes, report, results_table
from .report_s3 import S3_CPU_GROUPS, S3_METRICS, kept_section, s3_section, with_section
from .s3store import CEPH_TOOLS, external_configured, objectstore_for, s3_endpoint
from .scenarios_auth import AuthKind, basic_kind, bearer_kind, write_htpasswd
from .scenarios_blobs import Blob, make_blob
from .servers import Nginx, Server
from .settings import BLOB_SCENARIOS, Settings, parse_args
from .tokens import make_token_auth

MAIN_SCENARIOS = ("limits", *BLOB_SCENARIOS, "manifest", "auth", "small", "skopeo")


def check_tools(settings: Settings) -> None:
    needed = {"curl", settings.distribution_cmd[0], settings.dockyard_cmd[0]}
    if settings.storage == "s3" and not external_configured():
        needed |= set(CEPH_TOOLS)
    if settings.wants("manifest", "auth", "tags", "catalog"):
        needed.add("wrk")
    if settings.wants("manifest"):
        needed.add("ab")
    if settings.wants("skopeo"):
        needed.add("skopeo")
    if settings.wants("limits"):
        needed.add("nginx")
    if settings.wants("gc"):
        needed |= {settings.distribution_gc_cmd[0], settings.dockyard_gc_cmd[0]}
    missing = sorted(tool for tool in needed if shutil.which(tool) is None)
    if missing:
        hint = " (apt-get install nginx-light)" if "nginx" in missing else ""
        if "radosgw" in missing:
            hint += " (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
        raise SystemExit(f"missing tools: {', '.join(missing)}{hint}")


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


def run_main_phase(
    settings: Settings, workdir: Path, results: Results, sampler: MemorySampler,
    started: list[Server], nginx_box: list[Nginx],
) -> None:
    blob: Blob | None = None
    if settings.wants(*BLOB_SCENARIOS, "limits"):
        log(f"generating a {settings.blob_size // MiB} MiB random blob in $TMP")
        blob = make_blob(workdir, settings.blob_size)
    nginx = None
    if settings.wants("limits") and blob is not None:
        nginx = Nginx(workdir / "nginx", blob.path.parent)
        nginx_box.append(nginx)
        nginx.start()
    servers = {
        DISTRIBUTION: Server(DISTRIBUTION, settings.distribution_cmd, workdir / DISTRIBUTION),
        DOCKYARD: Server(DOCKYARD, settings.dockyard_cmd, workdir / DOCKYARD),
    }
    auth_kinds: dict[str, AuthKind] = {}
    auth_servers: dict[str, dict[str, Server]] = {}
    if settings.wants("auth"):
        htpasswd = workdir / "htpasswd"
        log(f"htpasswd entry made with {write_htpasswd(htpasswd)}")
        tokens = make_token_auth(workdir / "tokens")
        log("bearer tokens: RSA 2048 key, self-signed certificate, RS256 JWTs")
        for kind in (basic_kind(htpasswd), bearer_kind(tokens)):
            auth_kinds[kind.group] = kind
            auth_servers[kind.group] = {
                name: Server(name, server.command, workdir / f"{name}-{kind.group}",
                             htpasswd=kind.htpasswd, token=kind.token)
                for name, server in servers.items()
            }
    for name, server in servers.items():
        log(f"starting {name}: {' '.join(server.command)}")
        started.append(server)
        server.start()
        results.fact(name, "start_main_s", server.start_seconds)
        log(f"  {name} listening on {server.base}")
    record_idle_memory(results, servers)
    for name, server in servers.items():
        sampler.watch(f"main-{name}", server.pid)
    for group, guarded in auth_servers.items():
        for name, server in guarded.items():
            started.append(server)
            server.start()
            sampler.watch(f"{group}-{name}", server.pid)
    phase = MainPhase(settings, servers, auth_kinds, auth_servers, blob, nginx, workdir, results)
    run_main_rounds(phase)
    sampler.sample()
    for name in servers:
        memory = sampler.trees[f"main-{name}"][1]
        results.fact(name, "peak_main_mib", memory.peak_rss_kib / 1024)
        results.fact(name, "hwm_main_mib", memory.hwm_sum_kib / 1024)
        for group in auth_servers:
            auth_memory = sampler.trees[f"{group}-{name}"][1]
            results.fact(name, f"peak_{group}_mib", auth_memory.peak_rss_kib / 1024)
    all_guarded = [server for by_name in auth_servers.values() for server in by_name.values()]
    for server in [*servers.values(), *all_guarded]:
        server.stop()
    if nginx is not None:
        nginx.stop()
    if blob is not None:
        blob.path.unlink(missing_ok=True)



def s3_run_bytes(settings: Settings) -> int:
    """Roughly the most the S3 server holds at once in a run: per side the large blob and
    a copy being written, the limits' object and its copy, and slack for the rest."""
    return 6 * settings.blob_size + 2 * GiB


def run_on_s3(settings: Settings) -> int:
    """`--storage s3`: both registries on one S3 server; writes only the S3 section."""
    started_at = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-s3-", dir=settings.tmp_parent))
    results = Results()
    started: list[Server] = []
    sampler = MemorySampler()
    objectstore = objectstore_for(settings.s3_objectstore, s3_run_bytes(settings))
    info = machine_info(settings)
    info["radosgw"] = tool_version(["radosgw", "--version"]).split(" (")[0]
    with terminate_on_signals():
        try:
            with s3_endpoint(workdir, objectstore, s3_run_bytes(settings)) as endpoint, \
                    index_databases(settings.index) as databases:
                run = S3Run(settings, endpoint, workdir, results, started, databases=databases)
                sampler.start()
                try:
                    if settings.wants("limits", "monolithic", "chunked", "pull", "small",
                                      "skopeo"):
                        run_s3_main(run, sampler)
                    if settings.wants("gc"):
                        run_s3_gc(run)
                finally:
                    sampler.stop()
                    for server in started:
                        server.stop()
        except BenchError as exc:
            log(f"benchmark aborted: {exc}")
            return 2
        finally:
            for server in started:
                server.stop()
            if settings.keep_tmp:
                log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    text = s3_section(settings, results, started, info, endpoint, objectstore, run.gc,
                      started_at, time.monotonic() - clock)
    print()
    print(results_table(results, settings, S3_METRICS))
    print()
    print(cpu_table(results, S3_CPU_GROUPS))
    notes = failure_notes(results, started)
    if notes:
        print("\nFailures and notes:\n" + notes)
    if settings.out is not None:
        page = settings.out.read_text() if settings.out.exists() else ""
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(with_section(page, text))
        log(f"wrote the S3 section of {settings.out}")
    return 1 if results.failures else 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    check_tools(settings)
    if settings.storage == "s3":
        return run_on_s3(settings)
    started_at = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=settings.tmp_parent))
    results = Results()
    started: list[Server] = []
    nginx_box: list[Nginx] = []
    sampler = MemorySampler()
    with terminate_on_signals():
        try:
            info = machine_info(settings)
            sampler.start()
            if settings.wants(*MAIN_SCENARIOS):
                run_main_phase(settings, workdir, results, sampler, started, nginx_box)
            if settings.wants("downloads"):
                run_downloads_phase(settings, workdir, results, started)
            with index_databases(settings.index if settings.wants("tags", "catalog", "gc")
                                 else "sqlite") as databases:
                if settings.wants("tags", "catalog"):
                    run_metadata_phase(settings, workdir, results, sampler, started,
                                       databases)
                if settings.wants("gc"):
                    run_gc_phase(settings, workdir, results, started, databases)
        except BenchError as exc:
            log(f"benchmark aborted: {exc}")
            return 2
        finally:
            sampler.stop()
            for server in started:
                server.stop()
            for nginx in nginx_box:
                nginx.stop()
            logs = {
                f"{server.name} ({server.workdir.name})": server.log_summary()
                for server in started
            }
            if settings.keep_tmp:
                log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    text = report(settings, results, started, info, started_at, time.monotonic() - clock, logs)
    print()
    print(results_table(results, settings))
    print()
    print(cpu_table(results))
    notes = failure_notes(results, started)
    if notes:
        print("\nFailures and notes:\n" + notes)
    if settings.out is not None:
        # An S3 section written by `--storage s3` stays.
        kept = kept_section(settings.out.read_text()) if settings.out.exists() else ""
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(with_section(text, kept) if kept else text)
        log(f"wrote {settings.out}")
    return 1 if results.failures else 0
