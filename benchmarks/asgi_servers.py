#!/usr/bin/env python3
"""Which ASGI server should run dockyard? uvicorn and granian side by side, one worker each.

    python benchmarks/asgi_servers.py [--rounds 5] [--blob-mib 1024] [--wrk-seconds 10]

The same application (`dockyard.api.app:create_app`) on a fresh store under each server:
a monolithic blob push, a pull of that blob with curl (the application streams the file in
4 MiB reads under both), and manifest GETs with wrk. Rounds alternate the order; the table
holds medians. Needs curl and wrk, and granian (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from dockbench.clients import Client, curl_download
from dockbench.common import DOCKYARD, MiB
from dockbench.scenarios_blobs import Blob, make_blob, scenario_monolithic
from dockbench.scenarios_metadata import MANIFEST_REPO, manifest_get, push_small_image
from dockbench.servers import Server
from dockbench.settings import parse_args

HERE = Path(__file__).resolve().parent
LAUNCHERS = {
    "uvicorn": [sys.executable, "-m", "dockyard", "serve", "{config}"],
    "granian": [sys.executable, str(HERE / "dockbench" / "granian_launch.py"), "{config}"],
}
METRICS = (
    ("monolithic", "Blob push, monolithic", "MB/s"),
    ("pull", "Blob pull (curl)", "MB/s"),
    ("manifest_get_rps", "Manifest GET (wrk)", "req/s"),
    ("manifest_get_p99", "Manifest GET p99", "ms"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blob-mib", type=int, default=1024)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    args = parser.parse_args()
    settings = parse_args(["--quick", "--wrk-seconds", str(args.wrk_seconds)])
    os.environ["REGISTRY_HTTP_WORKERS"] = "1"  # one worker under each server
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-asgi-"))
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in LAUNCHERS}
    servers = {name: Server(DOCKYARD, argv, workdir / name) for name, argv in LAUNCHERS.items()}
    try:
        blob = make_blob(workdir, args.blob_mib * MiB)
        for server in servers.values():
            server.start()
            client = Client(server.port)
            push_small_image(client, MANIFEST_REPO, "latest")
            client.close()
        for round_no in range(args.rounds):
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for name in order:
                server = servers[name]
                got = {"monolithic": scenario_monolithic(server, blob),
                       "pull": scenario_pull_pushed(server, blob),
                       **manifest_get(server, settings, workdir)}
                for key, value in got.items():
                    samples[name].setdefault(key, []).append(value)
                print(f"round {round_no + 1} {name}: " + ", ".join(
                    f"{key} {value:,.1f}" for key, value in got.items()), file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(samples, args))
    return 0


def scenario_pull_pushed(server: Server, blob: Blob) -> float:
    """Pull the blob the monolithic push just stored."""
    return curl_download(f"{server.base}/v2/bench/monolithic/blobs/{blob.digest}", blob.size)


def report(samples: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        f"Command: `python benchmarks/asgi_servers.py --rounds {args.rounds} "
        f"--blob-mib {args.blob_mib} --wrk-seconds {args.wrk_seconds}` "
        f"(medians of {args.rounds} rounds, one worker each)",
        "",
        "| Scenario | Unit | uvicorn (uvloop, httptools) | granian | granian / uvicorn |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for key, label, unit in METRICS:
        uvicorn_values = samples["uvicorn"].get(key)
        granian_values = samples["granian"].get(key)
        if not uvicorn_values or not granian_values:
            continue
        under_uvicorn = statistics.median(uvicorn_values)
        under_granian = statistics.median(granian_values)
        ratio = under_granian / under_uvicorn if under_uvicorn else 0
        lines.append(f"| {label} | {unit} | {under_uvicorn:,.1f} | {under_granian:,.1f} | "
                     f"{ratio:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
