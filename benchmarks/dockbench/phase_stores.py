"""The phases on large stores written on disk: tags list and catalog, then GC."""

from __future__ import annotations

import re
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .common import DISTRIBUTION, DOCKYARD, MACHINE, SERVERS, BenchError, first_line, log
from .measure import Results, measured
from .pgindex import IndexDatabases
from .procs import MemorySampler
from .scenarios_gc import (
    FLOOR_PROCESSES,
    VARIANTS,
    GCOutcome,
    collect,
    deletion_floor,
    gc_workdir,
    prepare_variant,
    verify_variant,
)
from .scenarios_metadata import (
    catalog_full,
    catalog_pages,
    check_catalog,
    check_tags,
    tags_list,
)
from .servers import Server
from .settings import Settings
from .storegen import copy_store, deleted_share, make_gc_store, make_metadata_store

INDEX_LOG = re.compile(r"index: .*\(([\d.]+)s\)")


def logged_index_seconds(server: Server) -> float | None:
    """The time dockyard logs for its background index build ("index: built, N
    repositories (1.2s)"; logged at info level)."""
    try:
        found = INDEX_LOG.findall(server.log_path.read_text(errors="replace"))
    except OSError:
        return None
    return float(found[-1]) if found else None


def commands(settings: Settings) -> dict[str, list[str]]:
    return {DISTRIBUTION: settings.distribution_cmd, DOCKYARD: settings.dockyard_cmd}


def run_metadata_phase(
    settings: Settings, workdir: Path, results: Results, sampler: MemorySampler,
    started_servers: list[Server], databases: IndexDatabases,
) -> None:
    log(f"writing a store of {settings.repositories:,} repositories, one with "
        f"{settings.tags:,} tags, in distribution's layout")
    clock = time.perf_counter()
    store = make_metadata_store(workdir / "template-meta", settings.repositories, settings.tags)
    log(f"  {store.blobs:,} blobs written in {time.perf_counter() - clock:.1f}s")
    servers: dict[str, Server] = {}
    for name, command in commands(settings).items():
        server = Server(name, command, workdir / f"meta-{name}",
                        catalog_max=max(1000, len(store.repositories)),
                        database=databases.dsn("meta") if name == DOCKYARD else None,
                        log_index=name == DOCKYARD)
        started_servers.append(server)
        copy_store(store.root, server.root)
        log(f"starting {name} on its copy of the store")
        server.start()
        results.fact(name, "start_meta_s", server.start_seconds)
        log(f"  {name} answered after {server.start_seconds:.2f}s")
        # Listings read the store until the background index build is done: wait for it.
        if (seconds := server.wait_index_built()) is not None:
            results.fact(name, "index_meta_s", seconds)
            log(f"  {name} built its {databases.kind} index in {seconds:.1f}s")
        sampler.watch(f"meta-{name}", server.pid)
        servers[name] = server
        checks: list[tuple[tuple[str, ...], Callable[[], list[str]]]] = [
            (("tags",), partial(lambda s: [check_tags(s, store)], server)),
            (("catalog_full", "catalog_walk"), partial(check_catalog, server, store)),
        ]
        for groups, check in checks:
            if not settings.wants(groups[0].split("_")[0]):
                continue
            try:
                for line in check():
                    results.check(name, line)
            except BenchError as exc:
                for group in groups:
                    results.fail(group, name, f"set-up failed: {exc}")
                log(f"  {name:12} check failed: {first_line(exc)}")
    for round_no in range(settings.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        log(f"store round {round_no + 1}/{settings.rounds} (order: {', '.join(order)})")
        for group in ("tags", "catalog_full", "catalog_walk"):
            if not settings.wants(group.split("_")[0]):
                continue
            for name in order:
                server = servers[name]
                if results.set_up_failed(group, name):
                    continue
                action: Callable[[], dict[str, float]]
                if group == "tags":
                    action = partial(tags_list, server, store, settings, workdir)
                elif group == "catalog_full":
                    action = partial(catalog_full, server, store, settings, workdir)
                else:
                    action = partial(catalog_pages, server, store)
                measured(results, group, name, server, action, settings.quiet_wait)
    for name, server in servers.items():
        memory = sampler.trees[f"meta-{name}"][1]
        sampler.sample()
        results.fact(name, "peak_meta_mib", memory.peak_rss_kib / 1024)
        results.fact(name, "hwm_meta_mib", memory.hwm_sum_kib / 1024)
        server.stop()
    if not settings.keep_tmp:
        shutil.rmtree(store.root, ignore_errors=True)


def run_gc_phase(
    settings: Settings, workdir: Path, results: Results, started_servers: list[Server],
    databases: IndexDatabases,
) -> None:
    log(f"writing a GC store of {settings.gc_repositories:,} images in distribution's layout")
    store = make_gc_store(workdir / "template-gc", settings.gc_repositories,
                          settings.gc_delete_every)
    log(f"  {store.blobs:,} blobs; deleting {deleted_share(settings.gc_delete_every)} should "
        f"free {store.expected_deleted:,}")
    for name in SERVERS:
        results.fact(name, "gc_store_blobs", float(store.blobs))
        results.fact(name, "gc_expected", float(store.expected_deleted))
    outcomes: dict[tuple[str, str], list[GCOutcome]] = {}
    for round_no in range(settings.gc_rounds):
        order = list(VARIANTS) if round_no % 2 == 0 else list(reversed(VARIANTS))
        log(f"GC round {round_no + 1}/{settings.gc_rounds}")
        try:
            floor = deletion_floor(store, workdir)
            results.add("limit_gc_delete_s", MACHINE, floor)
            log(f"  machine      deleting the {store.expected_deleted:,} blob directories "
                f"alone (rm -rf x{FLOOR_PROCESSES}): {floor:.2f}s")
        except BenchError as exc:
            log(f"  machine      deletion floor failed: {first_line(exc)}")
        for kind, mode in order:
            server = Server(kind, commands(settings)[kind], gc_workdir(workdir, kind, mode),
                            database=databases.dsn("gc") if kind == DOCKYARD else None,
                            log_index=kind == DOCKYARD)
            started_servers.append(server)
            group = f"gc_{mode}"
            try:
                start_seconds = prepare_variant(server, store)
                if round_no == 0 and mode == "offline":
                    results.fact(kind, "start_gc_s", start_seconds)
                    if kind == DOCKYARD and (seconds := logged_index_seconds(server)) is not None:
                        results.fact(kind, "index_gc_s", seconds)
            except BenchError as exc:
                results.fail(group, kind, f"set-up: {exc}")
                log(f"  {kind:12} GC {mode} set-up failed: {first_line(exc)}")
                server.stop()
                continue
            box: list[GCOutcome] = []

            def action(s: Server = server, k: str = kind, m: str = mode,
                       out: list[GCOutcome] = box) -> dict[str, float]:
                out.append(collect(s, k, m, settings, store))
                return {f"gc_{m}_s": out[-1].seconds}

            # A collection cannot be repeated on the same store: one attempt, noisy or not.
            ok = measured(results, group, kind, server if mode != "offline" else None, action,
                          settings.quiet_wait, attempts=1)
            try:
                if ok and box:
                    verify_variant(server, store, box[-1])
                    outcomes.setdefault((kind, mode), []).append(box[-1])
                    if round_no == 0:
                        results.check(kind, f"GC {mode}: {box[-1].check}; deleted "
                                      f"{box[-1].before - box[-1].after} blobs as expected")
            except BenchError as exc:
                results.fail(group, kind, f"after GC: {exc}")
                log(f"  {kind:12} GC {mode} check failed: {first_line(exc)}")
            finally:
                server.stop()
                if not settings.keep_tmp:
                    shutil.rmtree(server.workdir, ignore_errors=True)
    record_gc_facts(results, outcomes)
    if not settings.keep_tmp:
        shutil.rmtree(store.root, ignore_errors=True)


def record_gc_facts(results: Results, outcomes: dict[tuple[str, str], list[GCOutcome]]) -> None:
    """Blobs each collector deleted and said it deleted, and how the load during an online
    collection fared (medians over its runs)."""
    for (kind, mode), runs in outcomes.items():
        results.fact(kind, f"gc_deleted_{mode}",
                     statistics.median(run.before - run.after for run in runs))
        reported = [run.reported for run in runs if run.reported is not None]
        if reported:
            results.fact(kind, f"gc_reported_{mode}", statistics.median(reported))
        if mode == "online":
            total = sum(run.load_ok + run.load_failed for run in runs)
            results.fact(kind, "gc_load_requests", float(total))
            if total:
                results.fact(kind, "gc_load_success_pct",
                             100.0 * sum(run.load_ok for run in runs) / total)
