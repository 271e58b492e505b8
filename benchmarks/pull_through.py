#!/usr/bin/env python3
"""The pull-through cache: dockyard beside distribution 2.8.2, both configured as a cache
(`proxy: {remoteurl: ...}`) of the same upstream, a distribution 2.8.2 on loopback.

    python benchmarks/pull_through.py [--rounds 5] [--out /tmp/pull-through.md]
    python benchmarks/pull_through.py --quick      # small layers, 2 rounds

Before timing, the upstream gets a 5-layer image (random layers of 8, 16, 32, 64 and
128 MiB; --quick: 1 to 16 MiB) and one 200 MiB blob (--quick: 32 MiB). Each round, for each
cache in turn (distribution, then dockyard), on a fresh, empty store:
- cold pull: `skopeo copy docker://CACHE/bench/image:v1 dir:DEST`, nothing cached; then
  (untimed) the test waits until the cache has stored every blob;
- warm pull: the same copy again, everything cached;
- concurrent cold pull, on another fresh store: --clients clients (threads, one connection
  each) GET the 200 MiB blob at once; the wall time until the last has it all, every
  client's sha256 checked, and the upstream's GETs of that blob counted from its log.
dockyard runs with its default workers (one per core) and, for the concurrent pull, also
with one worker. The report gives medians, the ratio dockyard / distribution (time: lower
is better), and the median number of upstream GETs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.oci import (  # noqa: E402
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    push_blob,
)
from tests.support.server import RunningRegistry, run_registry  # noqa: E402

MIB = 1024 * 1024
IMAGE = "bench/image"
BIG = "bench/big"


@dataclass
class Timings:
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)


@dataclass
class Concurrent:
    seconds: list[float] = field(default_factory=list)
    upstream_gets: list[int] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    options = parser.parse_args(argv)
    options.rounds = options.rounds or (2 if options.quick else 5)
    options.layers = [1, 2, 4, 8, 16] if options.quick else [8, 16, 32, 64, 128]
    options.big = 32 if options.quick else 200
    return options


def log(message: str) -> None:
    print(f"[pull-through] {message}", file=sys.stderr, flush=True)


def push_image(client: httpx.Client, layers_mib: list[int]) -> list[str]:
    """The 5-layer image, as bench/image:v1; returns its blobs' digests."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layers = [os.urandom(size * MIB) for size in layers_mib]
    for blob in (config, *layers):
        push_blob(client, IMAGE, blob)
    manifest = (b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","config":'
                + _json(descriptor(OCI_CONFIG, config)) + b',"layers":['
                + b",".join(_json(descriptor(OCI_LAYER, layer)) for layer in layers) + b"]}")
    response = client.put(f"/v2/{IMAGE}/manifests/v1", content=manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    response.raise_for_status()
    return [digest_of(blob) for blob in (config, *layers)]


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def upstream_gets(upstream: RunningRegistry, digest: str) -> int:
    pattern = re.compile(r'http\.request\.method=GET .*http\.request\.uri="?[^" ]*'
                         + re.escape(digest))
    return sum(1 for line in upstream.logs().splitlines()
               if "response completed" in line and pattern.search(line))


@contextmanager
def cache(kind: str, upstream: RunningRegistry, scratch: Path, workers: int | None = None
          ) -> Iterator[RunningRegistry]:
    directory = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    config: dict[str, Any] = {"proxy": {"remoteurl": upstream.url},
                              "log": {"level": "warn", "accesslog": {"disabled": True}}}
    if workers is not None:
        config["http"] = {"workers": workers}
    env = {"AWS_CA_BUNDLE": None} if kind == "distribution" else {}
    with run_registry(directory, kind=kind, config=config, env=env) as running:
        yield running
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def skopeo_copy(source: str, destination: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", source,
                    f"dir:{destination}"], check=True, capture_output=True)
    seconds = time.perf_counter() - started
    subprocess.run(["rm", "-rf", str(destination)], check=False)
    return seconds


def wait_stored(running: RunningRegistry, digests: list[str], timeout: float = 120) -> None:
    """Until the cache's store has every blob (both store while they stream)."""
    base = running.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    deadline = time.monotonic() + timeout
    for digest in digests:
        data = base / digest[7:9] / digest[7:] / "data"
        while not data.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{running.kind} did not store {digest}")
            time.sleep(0.05)


def concurrent_pull(running: RunningRegistry, digest: str, clients: int) -> float:
    failures: list[str] = []
    start = threading.Barrier(clients + 1)

    def pull() -> None:
        hasher = hashlib.sha256()
        with httpx.Client(base_url=running.url, timeout=300) as client:
            start.wait()
            with client.stream("GET", f"/v2/{BIG}/blobs/{digest}") as response:
                if response.status_code != 200:
                    failures.append(f"status {response.status_code}")
                    return
                for chunk in response.iter_raw(1024 * 1024):
                    hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            failures.append("wrong bytes")

    threads = [threading.Thread(target=pull) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{running.kind}: {failures[:3]}")
    return seconds


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    command = "python benchmarks/pull_through.py " + " ".join(shlex.quote(a) for a in argv)
    scratch = Path(tempfile.mkdtemp(prefix="pull-through-bench-"))
    pulls = {"distribution": Timings(), "dockyard": Timings()}
    crowd = {"distribution": Concurrent(), "dockyard": Concurrent(),
             "dockyard, 1 worker": Concurrent()}
    with run_registry(scratch / "upstream", kind="distribution",
                      env={"AWS_CA_BUNDLE": None}) as upstream:
        with upstream.client(timeout=300) as client:
            log(f"pushing the image ({sum(options.layers)} MiB) and a {options.big} MiB blob")
            digests = push_image(client, options.layers)
            big = push_blob(client, BIG, os.urandom(options.big * MIB))
        for round_number in range(options.rounds):
            log(f"round {round_number + 1} of {options.rounds}")
            for kind in ("distribution", "dockyard"):
                with cache(kind, upstream, scratch) as running:
                    source = f"docker://{running.host}/{IMAGE}:v1"
                    pulls[kind].cold.append(skopeo_copy(source, scratch / "cold"))
                    wait_stored(running, digests)
                    pulls[kind].warm.append(skopeo_copy(source, scratch / "warm"))
            for label, kind, workers in (("distribution", "distribution", None),
                                         ("dockyard", "dockyard", None),
                                         ("dockyard, 1 worker", "dockyard", 1)):
                before = upstream_gets(upstream, big)
                with cache(kind, upstream, scratch, workers) as running:
                    crowd[label].seconds.append(concurrent_pull(running, big,
                                                                options.clients))
                    wait_stored(running, [big])
                crowd[label].upstream_gets.append(upstream_gets(upstream, big) - before)
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    report = render(options, command, pulls, crowd)
    print(report)
    if options.out:
        options.out.write_text(report)
    return 0


def render(options: argparse.Namespace, command: str, pulls: dict[str, Timings],
           crowd: dict[str, Concurrent]) -> str:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    lines = [
        f"Command: `{command.strip()}`; {options.rounds} rounds, medians. Image: 5 layers of "
        f"{', '.join(str(size) for size in options.layers)} MiB "
        f"({sum(options.layers)} MiB); concurrent: {options.clients} clients, one "
        f"{options.big} MiB blob. Time: lower is better.",
        "",
        "| pull (skopeo copy) | distribution 2.8.2 | dockyard | dockyard / distribution |",
        "| --- | --- | --- | --- |",
    ]
    for what, label in (("cold", "cold (nothing cached)"), ("warm", "warm (all cached)")):
        theirs = median(getattr(pulls["distribution"], what))
        ours = median(getattr(pulls["dockyard"], what))
        lines.append(f"| {label} | {theirs:.2f} s | {ours:.2f} s | {ours / theirs:.2f}x |")
    theirs = median(crowd["distribution"].seconds)
    lines += [
        "",
        f"| {options.clients} clients, one uncached {options.big} MiB blob | wall time | "
        "/ distribution | upstream GETs of the blob (median, each round) |",
        "| --- | --- | --- | --- |",
    ]
    for label, result in crowd.items():
        seconds = median(result.seconds)
        gets = statistics.median(result.upstream_gets)
        lines.append(f"| {label} | {seconds:.2f} s | {seconds / theirs:.2f}x | "
                     f"{gets:g} ({', '.join(str(n) for n in result.upstream_gets)}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
