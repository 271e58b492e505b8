"""The concurrent-downloads phase: one server per side holding one blob, restarted before
every run, fast and slow clients interleaved between the two."""

from __future__ import annotations

import hashlib
import http.client
import statistics
from functools import partial
from pathlib import Path

from .common import DISTRIBUTION, DOCKYARD, HOST, SERVERS, BenchError, MiB, first_line, log
from .measure import Results, measured
from .scenarios_blobs import Blob, chunked_push, make_blob
from .scenarios_downloads import (
    DOWNLOAD_REPO,
    describe_slow,
    fast_downloads,
    fresh_server,
    raise_open_files_limit,
    slow_downloads,
    with_peak_memory,
)
from .servers import Server
from .settings import Settings

MODES = ("fast", "slow")


def verify_download(server: Server, blob: Blob) -> str:
    """Untimed: one full GET of the blob, hashed."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
    hasher = hashlib.sha256()
    received = 0
    try:
        conn.request("GET", f"/v2/{DOWNLOAD_REPO}/blobs/{blob.digest}")
        response = conn.getresponse()
        if response.status != 200:
            raise BenchError(f"verification GET: HTTP {response.status}")
        while piece := response.read(4 * MiB):
            hasher.update(piece)
            received += len(piece)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"verification GET: {exc!r}") from exc
    finally:
        conn.close()
    if received != blob.size or "sha256:" + hasher.hexdigest() != blob.digest:
        raise BenchError(f"verification GET: {received} bytes, not the blob's {blob.size}")
    return f"downloads: the {blob.size // MiB} MiB blob came back byte for byte"


def run_once(server: Server, blob: Blob, settings: Settings, mode: str) -> dict[str, float]:
    clients = settings.download_clients

    def fast() -> dict[str, float]:
        return {"dl_fast_mbps": fast_downloads(server.port, blob.digest, blob.size, clients)}

    def slow() -> dict[str, float]:
        outcome = slow_downloads(server.port, blob.digest, clients, settings.slow_seconds)
        log(f"  {server.name:12} slow clients received {outcome.received / MiB:.0f} MiB "
            f"in {outcome.seconds:.1f} s")
        return {}

    return with_peak_memory(server, clients, fast if mode == "fast" else slow, f"dl_{mode}")


def start_with_blob(server: Server, blob: Blob, results: Results) -> bool:
    try:
        server.start()
        chunked_push(server, blob, DOWNLOAD_REPO, 16 * MiB)
        results.check(server.name, verify_download(server, blob))
        return True
    except BenchError as exc:
        for mode in MODES:
            results.fail(f"downloads_{mode}", server.name, f"set-up failed: {exc}")
        log(f"  {server.name:12} downloads set-up failed: {first_line(exc)}")
        return False


def run_downloads_phase(
    settings: Settings, workdir: Path, results: Results, started_servers: list[Server]
) -> None:
    clients = settings.download_clients
    try:
        limit = raise_open_files_limit(clients)
    except BenchError as exc:
        for name in SERVERS:
            for mode in MODES:
                results.fail(f"downloads_{mode}", name, f"set-up failed: {exc}")
        log(f"concurrent downloads skipped: {exc}")
        return
    log(f"concurrent downloads: {clients} clients, a {settings.download_size // MiB} MiB blob "
        f"(open files limit {limit}); slow: {describe_slow(settings.slow_seconds)}")
    blob = make_blob(workdir, settings.download_size, "downloads.bin")
    commands = {DISTRIBUTION: settings.distribution_cmd, DOCKYARD: settings.dockyard_cmd}
    servers: dict[str, Server] = {}
    for name in SERVERS:
        server = Server(name, commands[name], workdir / f"downloads-{name}")
        started_servers.append(server)
        if start_with_blob(server, blob, results):
            servers[name] = server
    for round_no in range(settings.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        log(f"downloads round {round_no + 1}/{settings.rounds} (order: {', '.join(order)})")
        for mode in MODES:
            for name in order:
                if name not in servers:
                    continue
                each = servers[name]
                measured(results, f"downloads_{mode}", name, each,
                         partial(run_once, each, blob, settings, mode), settings.quiet_wait,
                         prepare=partial(fresh_server, each, blob.digest, blob.size))
    for name, server in servers.items():
        server.stop()
        idle = [value for mode in MODES
                for value in results.values.get(f"dl_{mode}_before_mib", {}).get(name, [])]
        if idle:
            results.fact(name, "idle_downloads_mib", statistics.median(idle))
    blob.path.unlink(missing_ok=True)

