"""An `--storage s3` run: both registries on the same S3 server, interleaved.

Per side, a server with the default blob redirects (GETs answer 307 to a presigned URL of
the object) and one with `storage.redirect.disable: true` on the same root (and, for
dockyard, the same local index), so both pulls read the blob the chunked push wrote. GC runs
on stores written straight into S3, one fresh copy per collector run.
"""

from __future__ import annotations

import http.client
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .clients import Client, check_blob, curl_download
from .common import DISTRIBUTION, DOCKYARD, HOST, MACHINE, SERVERS, BenchError, MiB, first_line, log
from .measure import Results, measured
from .pgindex import IndexDatabases
from .phase_stores import logged_index_seconds, record_gc_facts
from .procs import MemorySampler
from .s3store import S3Endpoint, delete_prefix, radosgw_cpu
from .scenarios_blobs import (
    CHUNKED_REPO,
    Blob,
    make_blob,
    make_small_blobs,
    scenario_chunked,
    scenario_monolithic,
    small_pull,
    small_push,
    verify_small,
)
from .scenarios_gc import GCOutcome, verify_variant
from .scenarios_s3 import (
    S3GC,
    GCPhases,
    collect_s3,
    deletion_floor,
    dockyard_cli_supports_s3,
    gc_workdir_s3,
    prepare_s3_variant,
    s3_limits,
    verify_stored_blob,
)
from .scenarios_skopeo import skopeo_round
from .servers import S3Storage, Server
from .settings import Settings
from .storegen import make_gc_store


@dataclass
class S3Run:
    settings: Settings
    endpoint: S3Endpoint
    workdir: Path
    results: Results
    started: list[Server]
    redirecting: dict[str, Server] = field(default_factory=dict)
    proxied: dict[str, Server] = field(default_factory=dict)
    gc: S3GC | None = None
    store_objects: int = 0
    databases: IndexDatabases = field(default_factory=lambda: IndexDatabases(None))

    def backend_cpu(self) -> float:
        return radosgw_cpu(self.endpoint)

    def measure(self, group: str, name: str, server: Server | None,
                action: Callable[[], dict[str, float]], attempts: int = 3) -> bool:
        # An external S3's CPU cannot be seen from here: it counts as nobody's.
        backend = self.backend_cpu if self.endpoint.ceph_conf is not None else None
        return measured(self.results, group, name, server, action, self.settings.quiet_wait,
                        attempts=attempts, backend_cpu=backend)


def commands(settings: Settings) -> dict[str, list[str]]:
    return {DISTRIBUTION: settings.distribution_cmd, DOCKYARD: settings.dockyard_cmd}


def start_servers(run: S3Run, sampler: MemorySampler) -> None:
    for name, command in commands(run.settings).items():
        root = run.endpoint.root(name)
        main = Server(name, command, run.workdir / f"s3-{name}",
                      s3=S3Storage(run.endpoint, root))
        # Same root and (dockyard) the same index: it serves what `main` stored.
        proxied = Server(name, command, run.workdir / f"s3-{name}-proxied",
                         s3=S3Storage(run.endpoint, root, redirect_disabled=True,
                                      index_directory=main.root))
        for server, what in ((main, "redirecting blob GETs"), (proxied, "proxying blob GETs")):
            run.started.append(server)
            server.start()
            log(f"  {name:12} on S3, {what}: {server.base} (up in {server.start_seconds:.2f}s)")
        run.results.fact(name, "start_main_s", main.start_seconds)
        sampler.watch(f"s3-{name}", main.pid)
        sampler.watch(f"s3-proxied-{name}", proxied.pid)
        run.redirecting[name], run.proxied[name] = main, proxied


def redirect_check(run: S3Run, blob: Blob) -> None:
    """Untimed: a blob GET answers 307 to the S3 endpoint on the redirecting server, 200 on
    the proxying one."""
    for name in SERVERS:
        for server, wanted in ((run.redirecting[name], 307), (run.proxied[name], 200)):
            conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
            try:
                conn.request("GET", f"/v2/{CHUNKED_REPO}/blobs/{blob.digest}")
                response = conn.getresponse()
                location = response.getheader("Location") or ""
                response.close()
            finally:
                conn.close()
            if response.status != wanted:
                raise BenchError(f"{name}: blob GET answered {response.status}, "
                                 f"expected {wanted}")
            if wanted == 307 and not location.startswith(run.endpoint.endpoint):
                raise BenchError(f"{name}: blob GET redirected to {location[:80]!r}")
        run.results.check(name, "blob GET answers 307 to a presigned URL of the object "
                                "by default, 200 from the server with "
                                "storage.redirect.disable: true")


def ensure_pull_blob(server: Server, blob: Blob) -> None:
    """Untimed: the blob the pulls read is there (the chunked push leaves it)."""
    client = Client(server.port)
    try:
        check_blob(client, CHUNKED_REPO, blob.digest, blob.size)
    except BenchError:
        scenario_monolithic(server, blob, CHUNKED_REPO)
    finally:
        client.close()


def keyed(key: str, action: Callable[[], float]) -> Callable[[], dict[str, float]]:
    return lambda: {key: action()}


def blob_round(run: S3Run, name: str, blob: Blob, round_no: int) -> None:
    settings, results = run.settings, run.results
    main, proxied = run.redirecting[name], run.proxied[name]
    pushes = (("monolithic", partial(scenario_monolithic, main, blob)),
              ("chunked", partial(scenario_chunked, main, blob, settings.chunk_size)))
    for scenario, push in pushes:
        if not settings.wants(scenario):
            continue
        ok = run.measure(scenario, name, main, keyed(scenario, push))
        if ok and round_no == 0:
            try:
                verify_stored_blob(main, blob, scenario)
            except BenchError as exc:
                results.fail(scenario, name, str(exc))
    if not settings.wants("pull"):
        return
    try:
        ensure_pull_blob(main, blob)
    except BenchError as exc:
        results.fail("pull", name, f"set-up failed: {exc}")
        log(f"  {name:12} pull set-up failed: {first_line(exc)}")
        return
    url = f"/v2/{CHUNKED_REPO}/blobs/{blob.digest}"
    run.measure("pull", name, main,
                lambda: {"pull": curl_download(main.base + url, blob.size, follow=True)})
    run.measure("pull_proxied", name, proxied,
                lambda: {"pull_proxied": curl_download(proxied.base + url, blob.size)})


def small_round(run: S3Run, name: str, round_no: int) -> None:
    """Pushed to the redirecting server, pulled from the proxying one (the same store): a
    client of many small blobs gets them in one request each."""
    settings, results = run.settings, run.results
    small = make_small_blobs(settings.small_blobs, f"small/r{round_no}", round_no)
    main, proxied = run.redirecting[name], run.proxied[name]
    clients = settings.small_clients
    if run.measure("small_push", name, main, partial(small_push, main, small, clients)):
        run.measure("small_pull", name, proxied, partial(small_pull, proxied, small, clients))
        if round_no == 0:
            try:
                results.check(name, verify_small(proxied, small))
            except BenchError as exc:
                results.fail("small_pull", name, str(exc))


def warm_up(run: S3Run) -> None:
    """One short untimed pass per server, so first-use costs do not land in round 1."""
    blob = make_blob(run.workdir, 8 * MiB, "warm-up.bin")
    small = make_small_blobs(50, "small/warm", 1)
    log("warm-up (untimed)")
    for name in SERVERS:
        main, proxied = run.redirecting[name], run.proxied[name]
        try:
            scenario_monolithic(main, blob)
            scenario_chunked(main, blob, run.settings.chunk_size)
            curl_download(f"{main.base}/v2/{CHUNKED_REPO}/blobs/{blob.digest}", blob.size,
                          follow=True)
            curl_download(f"{proxied.base}/v2/{CHUNKED_REPO}/blobs/{blob.digest}", blob.size)
            small_push(main, small, 4)
            small_pull(proxied, small, 4)
        except BenchError as exc:
            log(f"  {name:12} warm-up failed: {first_line(exc)}")
    blob.path.unlink(missing_ok=True)


def run_s3_main(run: S3Run, sampler: MemorySampler) -> None:
    settings, results = run.settings, run.results
    blob = make_blob(run.workdir, settings.blob_size)
    start_servers(run, sampler)
    warm_up(run)
    policy = run.workdir / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    for round_no in range(settings.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        log(f"S3 round {round_no + 1}/{settings.rounds} (order: {', '.join(order)})")
        if settings.wants("limits"):
            run.measure("limits_s3", MACHINE, None, partial(s3_limits, run.endpoint, blob))
        for name in order:
            blob_round(run, name, blob, round_no)
        if round_no == 0 and settings.wants("pull"):
            try:
                redirect_check(run, blob)
            except BenchError as exc:
                results.fail("pull", DOCKYARD, f"redirect check: {exc}")
                log(f"  redirect check failed: {exc}")
        if settings.wants("small"):
            for name in order:
                small_round(run, name, round_no)
        if settings.wants("skopeo"):
            for name in order:
                main = run.redirecting[name]
                run.measure("skopeo", name, main, partial(
                    skopeo_round, main, settings, run.workdir, policy, round_no))
    sampler.sample()
    for name in SERVERS:
        memory = sampler.trees[f"s3-{name}"][1]
        results.fact(name, "peak_main_mib", memory.peak_rss_kib / 1024)
    for name in SERVERS:
        run.redirecting[name].stop()
        run.proxied[name].stop()
    blob.path.unlink(missing_ok=True)


def run_s3_gc(run: S3Run) -> None:
    settings, results, endpoint = run.settings, run.results, run.endpoint
    log(f"writing a GC store of {settings.gc_repositories:,} images in distribution's layout")
    store = make_gc_store(run.workdir / "template-gc", settings.gc_repositories,
                          settings.gc_delete_every)
    for name in SERVERS:
        results.fact(name, "gc_store_blobs", float(store.blobs))
        results.fact(name, "gc_expected", float(store.expected_deleted))
    probe = Server(DOCKYARD, settings.dockyard_cmd, run.workdir / "gc-probe",
                   s3=S3Storage(endpoint, endpoint.root("gc-probe")),
                   database=run.databases.dsn("gc_probe"))
    run.gc = gc = S3GC(cli=dockyard_cli_supports_s3(settings, probe))
    log(f"  {gc.describe()}")
    outcomes: dict[tuple[str, str], list[GCOutcome]] = {}
    for round_no in range(settings.gc_rounds):
        order = list(gc.variants) if round_no % 2 == 0 else list(reversed(gc.variants))
        log(f"S3 GC round {round_no + 1}/{settings.gc_rounds}")
        try:
            floor = deletion_floor(endpoint, store, settings.s3_concurrency,
                                   endpoint.root(f"gc-floor-{round_no}"))
            results.add("limit_s3_gc_delete_s", MACHINE, floor)
            log(f"  machine      deleting the {store.expected_deleted:,} blob objects alone "
                f"(DeleteObjects): {floor:.2f}s")
            floor = deletion_floor(endpoint, store, settings.s3_concurrency,
                                   endpoint.root(f"gc-floor-links-{round_no}"), links=True)
            results.add("limit_s3_gc_delete_links_s", MACHINE, floor)
            log(f"  machine      deleting them and the deleted images' "
                f"{len(store.doomed_links()):,} layer links (DeleteObjects): {floor:.2f}s")
        except BenchError as exc:
            log(f"  machine      deletion floor failed: {first_line(exc)}")
        for kind, mode in order:
            root = endpoint.root(f"gc-{kind}-{mode}-{round_no}")
            server = Server(kind, commands(settings)[kind],
                            gc_workdir_s3(run.workdir, kind, mode, round_no),
                            s3=S3Storage(endpoint, root, redirect_disabled=True,
                                         admin=kind == DOCKYARD and not gc.cli),
                            database=run.databases.dsn("gc") if kind == DOCKYARD else None,
                            log_index=kind == DOCKYARD)
            run.started.append(server)
            group = f"gc_{mode}"
            try:
                start_seconds, objects, seconds = prepare_s3_variant(
                    server, store, settings.s3_concurrency)
                results.add("limit_s3_store_put", MACHINE, objects / seconds)
                run.store_objects = objects
                log(f"  {kind:12} store written: {objects:,} objects in {seconds:.1f}s; "
                    f"started in {start_seconds:.1f}s")
                if round_no == 0 and "start_gc_s" not in results.facts.get(kind, {}):
                    results.fact(kind, "start_gc_s", start_seconds)
                    if kind == DOCKYARD and (index := logged_index_seconds(server)) is not None:
                        results.fact(kind, "index_gc_s", index)
            except BenchError as exc:
                results.fail(group, kind, f"set-up: {exc}")
                log(f"  {kind:12} GC {mode} set-up failed: {first_line(exc)}")
                server.stop()
                delete_prefix(endpoint, root.lstrip("/") + "/")
                continue
            box: list[GCOutcome] = []
            phases = GCPhases()

            def action(s: Server = server, k: str = kind, m: str = mode,
                       out: list[GCOutcome] = box, p: GCPhases = phases) -> dict[str, float]:
                out.append(collect_s3(s, k, m, settings, store, gc, p))
                return {f"gc_{m}_s": out[-1].seconds, **p.split(out[-1].seconds)}

            # A collection cannot be repeated on the same store: one attempt, noisy or not.
            ok = run.measure(group, kind, server if mode == "online" else None, action,
                             attempts=1)
            try:
                if ok and box:
                    verify_variant(server, store, box[-1])
                    outcomes.setdefault((kind, mode), []).append(box[-1])
                    if round_no == 0:
                        results.check(kind, f"GC {mode} on S3: {box[-1].check}; deleted "
                                      f"{box[-1].before - box[-1].after} blobs as expected")
                        if box[-1].links_left is not None:
                            results.fact(kind, f"gc_links_left_{mode}",
                                         float(box[-1].links_left))
            except BenchError as exc:
                results.fail(group, kind, f"after GC: {exc}")
                log(f"  {kind:12} GC {mode} check failed: {first_line(exc)}")
            finally:
                server.stop()
                started = time.perf_counter()
                delete_prefix(endpoint, root.lstrip("/") + "/")
                log(f"  {kind:12} its store deleted from S3 in "
                    f"{time.perf_counter() - started:.1f}s")
                if not settings.keep_tmp:
                    shutil.rmtree(server.workdir, ignore_errors=True)
    record_gc_facts(results, outcomes)
    if not settings.keep_tmp:
        shutil.rmtree(store.root, ignore_errors=True)
