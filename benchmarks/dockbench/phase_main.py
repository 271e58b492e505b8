"""The first phase: one long-lived server per side (plus one per kind of auth), blobs and
manifests."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .clients import Client
from .common import DOCKYARD, MACHINE, SERVERS, BenchError, MiB, first_line, log
from .machine import limits_round
from .measure import Results, measured
from .scenarios_auth import AuthKind, auth_pair, check_auth
from .scenarios_blobs import (
    Blob,
    SmallBlobs,
    make_blob,
    make_small_blobs,
    prepare_pull,
    scenario_chunked,
    scenario_monolithic,
    scenario_pull,
    small_pull,
    small_push,
    verify_blob,
    verify_small,
)
from .scenarios_metadata import (
    MANIFEST_REPO,
    manifest_get,
    manifest_head,
    push_small_image,
)
from .scenarios_skopeo import skopeo_round
from .servers import Nginx, Server
from .settings import BLOB_SCENARIOS, Settings


@dataclasses.dataclass
class MainPhase:
    settings: Settings
    servers: dict[str, Server]
    auth_kinds: dict[str, AuthKind]  # by measured() group
    auth_servers: dict[str, dict[str, Server]]  # group -> server name -> guarded server
    blob: Blob | None
    nginx: Nginx | None
    workdir: Path
    results: Results

    @property
    def policy(self) -> Path:
        return self.workdir / "policy.json"


def record_idle_memory(results: Results, servers: dict[str, Server]) -> None:
    """RSS of every process of each freshly started server, before any load."""
    time.sleep(2.0)
    for name, server in servers.items():
        processes = server.rss_per_process()
        if not processes or server.process is None:
            continue
        leader = server.process.pid
        total = sum(kib for _, kib in processes) / 1024
        results.fact(name, "idle_rss_total_mib", total)
        results.fact(name, "idle_rss_leader_mib", dict(processes).get(leader, 0) / 1024)
        workers = [kib / 1024 for pid, kib in processes
                   if pid != leader and not is_multiprocessing_helper(pid)]
        if name == DOCKYARD and workers:
            results.fact(name, "idle_rss_worker_max_mib", max(workers))
            results.fact(name, "idle_rss_workers", float(len(workers)))
        shown = ", ".join(f"{kib / 1024:.0f}" for _, kib in processes)
        log(f"  {name:12} idle RSS per process (MiB): {shown}")


def is_multiprocessing_helper(pid: int) -> bool:
    """Python's multiprocessing resource tracker: a child of the server, not a worker."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def set_up(phase: MainPhase) -> None:
    """Untimed: the manifest both manifest scenarios read, and the auth servers' one."""
    phase.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    if phase.settings.wants("manifest", "auth"):
        for name, server in phase.servers.items():
            client = Client(server.port)
            try:
                push_small_image(client, MANIFEST_REPO, "latest")
            except BenchError as exc:
                for group in ("manifest_get", "manifest_head", *phase.auth_kinds):
                    phase.results.fail(group, name, f"set-up failed: {exc}")
            finally:
                client.close()
    for group, guarded in phase.auth_servers.items():
        kind = phase.auth_kinds[group]
        for name, server in guarded.items():
            client = Client(server.port, headers=kind.setup_headers)
            try:
                push_small_image(client, MANIFEST_REPO, "latest")
                phase.results.check(name, check_auth(server, kind))
            except BenchError as exc:
                phase.results.fail(group, name, f"set-up failed: {exc}")
            finally:
                client.close()


def warm_pull(server: Server, blob: Blob) -> float:
    prepare_pull(server, blob)
    return scenario_pull(server, blob)


def warm_up(phase: MainPhase) -> None:
    """One short untimed pass of the blob, manifest and skopeo scenarios per server, so
    first-use costs (imports, caches, new directories) do not land in round 1."""
    settings = dataclasses.replace(phase.settings, wrk_duration=1, layer_size=MiB // 4)
    warm_blob = make_blob(phase.workdir, 32 * MiB, "warm-up.bin")
    small = make_small_blobs(50, "small/warm", 1)
    steps: list[tuple[str, Callable[[Server], object]]] = [
        ("monolithic", lambda s: scenario_monolithic(s, warm_blob)),
        ("chunked", lambda s: scenario_chunked(s, warm_blob, settings.chunk_size)),
        ("pull", lambda s: warm_pull(s, warm_blob)),
        ("manifest", lambda s: (manifest_get(s, settings, phase.workdir),
                                manifest_head(s, settings, phase.workdir))),
        ("small", lambda s: (small_push(s, small, 4), small_pull(s, small, 4))),
        ("skopeo", lambda s: skopeo_round(s, settings, phase.workdir, phase.policy, 999)),
    ]
    log("warm-up (untimed)")
    for server in phase.servers.values():
        for scenario, step in steps:
            if scenario not in settings.scenarios:
                continue
            try:
                step(server)
            except BenchError as exc:
                log(f"  {server.name:12} warm-up {scenario} failed: {first_line(exc)}")
    warm_blob.path.unlink(missing_ok=True)


def blob_step(phase: MainPhase, scenario: str, server: Server, round_no: int) -> None:
    blob, results, name = phase.blob, phase.results, server.name
    assert blob is not None
    if scenario == "pull":
        try:
            server.ensure_running()
            prepare_pull(server, blob)
        except BenchError as exc:
            results.fail(scenario, name, f"set-up (pushing the blob) failed: {exc}")
            log(f"  {name:12} pull set-up failed: {first_line(exc)}")
            return

    def action() -> dict[str, float]:
        assert blob is not None
        if scenario == "monolithic":
            return {scenario: scenario_monolithic(server, blob)}
        if scenario == "chunked":
            return {scenario: scenario_chunked(server, blob, phase.settings.chunk_size)}
        return {scenario: scenario_pull(server, blob)}

    measured(results, scenario, name, server, action, phase.settings.quiet_wait)
    if round_no == 0:
        try:
            verify_blob(server, blob, scenario)
        except BenchError as exc:
            results.fail(scenario, name, str(exc))
            log(f"  {name:12} {scenario}: VERIFICATION FAILED: {exc}")


def small_step(phase: MainPhase, server: Server, small: SmallBlobs, round_no: int) -> None:
    settings, results, name = phase.settings, phase.results, server.name
    clients = settings.small_clients
    if measured(results, "small_push", name, server, lambda: small_push(server, small, clients),
                settings.quiet_wait):
        measured(results, "small_pull", name, server,
                 lambda: small_pull(server, small, clients), settings.quiet_wait)
        if round_no == 0:
            try:
                results.check(name, verify_small(server, small))
            except BenchError as exc:
                results.fail("small_pull", name, str(exc))


def run_main_rounds(phase: MainPhase) -> None:
    settings, results = phase.settings, phase.results
    set_up(phase)
    warm_up(phase)
    for round_no in range(settings.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        log(f"round {round_no + 1}/{settings.rounds} (order: {', '.join(order)})")
        small = (
            make_small_blobs(settings.small_blobs, f"small/r{round_no}", round_no)
            if settings.wants("small") else None
        )
        if settings.wants("limits") and phase.blob is not None:
            blob = phase.blob
            measured(results, "limits", MACHINE, None,
                     partial(limits_round, settings, phase.workdir, phase.nginx,
                             blob.path.name, blob.size),
                     settings.quiet_wait)
        for scenario in settings.scenarios:
            for name in order:
                scenario_step(phase, scenario, phase.servers[name], round_no, small)


def scenario_step(
    phase: MainPhase, scenario: str, server: Server, round_no: int, small: SmallBlobs | None
) -> None:
    settings, results, name, workdir = phase.settings, phase.results, server.name, phase.workdir
    if scenario in BLOB_SCENARIOS:
        blob_step(phase, scenario, server, round_no)
    elif scenario == "manifest":
        for group, runner in (("manifest_get", manifest_get), ("manifest_head", manifest_head)):
            if not results.set_up_failed(group, name):
                measured(results, group, name, server, partial(runner, server, settings, workdir),
                         settings.quiet_wait)
    elif scenario == "auth":
        for group, servers in phase.auth_servers.items():
            guarded = servers.get(name)
            if guarded is None or results.set_up_failed(group, name):
                continue
            measured(results, group, name, guarded,
                     partial(auth_pair, server, guarded, phase.auth_kinds[group], settings,
                             workdir),
                     settings.quiet_wait, also=server)
    elif scenario == "small" and small is not None:
        small_step(phase, server, small, round_no)
    elif scenario == "skopeo":
        measured(results, "skopeo", name, server,
                 partial(skopeo_round, server, settings, workdir, phase.policy, round_no),
                 settings.quiet_wait)
