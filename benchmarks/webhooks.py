#!/usr/bin/env python3
"""What webhooks and metrics cost: manifest GETs and pushes with notifications off and on
(and with Prometheus metrics on), and how long an event takes to reach its receiver, for
dockyard and distribution 2.8.2 in one run.

    python benchmarks/webhooks.py [--rounds 3] [--duration 10] [--images 150] [--out FILE]

Each server runs on a store of its own (dockyard with its default workers, one per core),
with no `notifications` ("off") or with one endpoint ("on") that takes every event: pulls
included, as distribution's default, so every manifest GET writes an event. dockyard also
runs with `maxevents: 100` on that endpoint ("batched": a POST carries what waits). Both
also run with no webhooks and Prometheus metrics on (`http.debug.addr` and
`http.debug.prometheus.enabled`), for the metrics' cost. The receiver is
a separate process answering 200 at once and noting when each event arrived.

- Manifest GET: `wrk --latency -t2 -c8 -d<duration>s` of one manifest by tag.
- Pushes: 4 threads each push `--images` small images (a 256-byte config, a 4 KiB layer,
  the manifest; POST and a monolithic PUT per blob) over keep-alive connections; images/s.
- Drain: with notifications on, how long after the GETs the receiver was still getting
  their pull events (every GET is one event; a sender behind the GETs catches up after).
- Delivery latency, once the GETs' events have all arrived: for each manifest pushed, from
  the moment the client had its 201 to the moment the receiver had the manifest's push
  event; p50 and p99 over every image of the round. distribution sends from memory (its
  queue is lost when it stops); dockyard from the index, where the event was written
  before the 201.

Servers and configurations run in turn, `--rounds` times; the report gives medians over the
rounds, and dockyard-on / dockyard-off as the cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockbench.clients import Client, expect, run_wrk, upload_bytes
from dockbench.common import (
    HOST,
    MANIFEST_ACCEPT,
    NA,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    BenchError,
    log,
)
from dockbench.machine import wait_for_quiet
from dockbench.servers import Server, free_port

SCRATCH = Path("/tmp/webhooks-bench")
# dockyard's `maxevents` in its "batched" setup (distribution has no such key).
BATCHED = 100
MODES = {"distribution": ("off", "on", "metrics"),
         "dockyard": ("off", "on", "batched", "metrics")}
PUSH_THREADS = 4
QUIET_WAIT_S = 30.0


# --- the receiver (a process of its own) ------------------------------------------------

def receive(port: int, out: Path) -> None:
    """Answer 200 to every POST and append `arrival action digest` per event to `out`."""
    sink = out.open("a", buffering=1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrived = time.time()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            lines = [f"{arrived:.6f} {event['action']} {event['target'].get('digest', '-')}\n"
                     for event in json.loads(body)["events"]]
            with lock:
                sink.writelines(lines)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: (sink.flush(), os._exit(0)))
    server.serve_forever()


@dataclass
class Receiver:
    port: int
    out: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/events"

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--receive", str(self.port),
                                         str(self.out)], start_new_session=True)
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise BenchError("the receiver did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def count(self) -> int:
        return len(self.out.read_text().splitlines()) if self.out.exists() else 0

    def wait_until_quiet(self, quiet: float, timeout: float) -> float:
        """Wait until no event has arrived for `quiet` seconds; the seconds until the last
        one came."""
        started = time.monotonic()
        last, changed = -1, started
        while time.monotonic() - changed < quiet and time.monotonic() - started < timeout:
            count = self.count()
            if count != last:
                last, changed = count, time.monotonic()
            time.sleep(0.05)
        return changed - started

    def arrivals(self) -> dict[str, float]:
        """When each manifest push event arrived (the first time), by digest."""
        found: dict[str, float] = {}
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                arrived, action, digest = line.split(" ")
                if action == "push":
                    found.setdefault(digest, float(arrived))
        return found


def notifications_yaml(receiver: Receiver, max_events: int = 1) -> str:
    return ("notifications:\n  endpoints:\n    - name: bench\n"
            f"      url: {receiver.url}\n      timeout: 2s\n      threshold: 5\n"
            "      backoff: 1s\n" + (f"      maxevents: {max_events}\n" if max_events > 1
                                    else ""))


# --- the workloads ------------------------------------------------------------------------

def push_image(client: Client, repo: str, tag: str) -> tuple[str, float]:
    """Push a fresh small image; its manifest digest and when the 201 came."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "nonce": os.urandom(8).hex()}).encode().ljust(256)
    layer = os.urandom(4096)
    for blob in (config, layer):
        upload_bytes(client, repo, blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config),
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "size": len(layer),
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest()}],
    }).encode()
    expect(client.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                          headers={"Content-Type": OCI_MANIFEST}), (201,), "PUT manifest")
    return "sha256:" + hashlib.sha256(manifest).hexdigest(), time.time()


def push_many(port: int, images: int, label: str) -> tuple[float, dict[str, float]]:
    """Images/s of PUSH_THREADS threads pushing `images` each; when each 201 came."""
    done: dict[str, float] = {}

    def pusher(number: int) -> dict[str, float]:
        client = Client(port)
        try:
            return dict(push_image(client, f"push/{label}{number}", f"t{n}")
                        for n in range(images))
        finally:
            client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(PUSH_THREADS) as pool:
        for result in pool.map(pusher, range(PUSH_THREADS)):
            done.update(result)
    return PUSH_THREADS * images / (time.perf_counter() - started), done


def latencies(acknowledged: dict[str, float], receiver: Receiver, timeout: float = 60
              ) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        arrived = receiver.arrivals()
        if all(digest in arrived for digest in acknowledged) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = [digest for digest in acknowledged if digest not in arrived]
    if missing:
        raise BenchError(f"{len(missing)} of {len(acknowledged)} push events never arrived")
    return sorted(arrived[digest] - at for digest, at in acknowledged.items())


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


# --- the run ------------------------------------------------------------------------------

@dataclass
class Setup:
    label: str
    server: Server
    receiver: Receiver | None


def make_setups(work: Path, dockyard_cmd: list[str]) -> list[Setup]:
    distribution = ["docker-registry", "serve", "{config}"]
    setups = []
    for name, command in (("distribution", distribution), ("dockyard", dockyard_cmd)):
        for mode in MODES[name]:
            label = f"{name}-{mode}"
            receiver = Receiver(free_port(), work / f"{label}.events") \
                if mode in ("on", "batched") else None
            yaml = notifications_yaml(receiver, BATCHED if mode == "batched" else 1) \
                if receiver else ""
            debug = (f"  debug:\n    addr: {HOST}:{free_port()}\n    prometheus:\n"
                     "      enabled: true\n") if mode == "metrics" else ""
            setups.append(Setup(label, Server(label, command, work / label,
                                              shared_config=yaml, http_config=debug),
                                receiver))
    return setups


def one_round(setup: Setup, options: argparse.Namespace, number: int) -> dict[str, float]:
    server, receiver = setup.server, setup.receiver
    if receiver is not None:
        receiver.start()
    server.start()
    try:
        client = Client(server.port)
        try:
            push_image(client, "bench/app", "v1")
        finally:
            client.close()
        load = wait_for_quiet(QUIET_WAIT_S)
        wrk = run_wrk(f"{server.base}/v2/bench/app/manifests/v1", {"Accept": MANIFEST_ACCEPT},
                      server.workdir / "wrk.lua", options.duration, 2, 8)
        drained = None
        if receiver is not None:
            # The GETs' pull events first reach the receiver, so the pushes' events are
            # timed on their own, not behind that backlog.
            drained = receiver.wait_until_quiet(2.0, 300.0)
        wait_for_quiet(QUIET_WAIT_S)
        rate, acknowledged = push_many(server.port, options.images, f"r{number}-")
        result = {"get_rps": wrk["rps"], "get_p99_ms": wrk["p99_ms"], "push_ips": rate,
                  "load": load}
        if receiver is not None:
            delays = latencies(acknowledged, receiver)
            result["latency_p50_ms"] = percentile(delays, 0.5) * 1000
            result["latency_p99_ms"] = percentile(delays, 0.99) * 1000
            if drained is not None:
                result["drain_s"] = drained
        return result
    finally:
        server.stop()
        if receiver is not None:
            receiver.stop()


def fmt(value: float | None, digits: int = 0) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, list[dict[str, float]]], options: argparse.Namespace,
           command: str) -> str:
    def median(label: str, key: str) -> float | None:
        values = [entry[key] for entry in results.get(label, []) if key in entry]
        return statistics.median(values) if values else None

    lines = [
        f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
        f"{options.rounds} rounds, medians)", "",
        "| server | webhooks | manifest GET req/s | GET p99 ms | pushes images/s "
        "| event delivery p50 ms | p99 ms | GETs' events sent after the GETs, s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("distribution", "dockyard"):
        for mode in MODES[name]:
            label = f"{name}-{mode}"
            shown = {"batched": f"on, maxevents {BATCHED}",
                     "metrics": "off; Prometheus metrics on"}.get(mode, mode)
            lines.append(
                f"| {name} | {shown} | {fmt(median(label, 'get_rps'))} "
                f"| {fmt(median(label, 'get_p99_ms'), 2)} | {fmt(median(label, 'push_ips'), 1)} "
                f"| {fmt(median(label, 'latency_p50_ms'), 1)} "
                f"| {fmt(median(label, 'latency_p99_ms'), 1)} "
                f"| {fmt(median(label, 'drain_s'), 1)} |")
    lines.append("")
    for name in ("distribution", "dockyard"):
        on_get, off_get = median(f"{name}-on", "get_rps"), median(f"{name}-off", "get_rps")
        on_push, off_push = median(f"{name}-on", "push_ips"), median(f"{name}-off", "push_ips")
        if on_get and off_get and on_push and off_push:
            lines.append(f"- {name}: with webhooks on, manifest GETs at "
                         f"{on_get / off_get:.2f}x and pushes at {on_push / off_push:.2f}x "
                         f"of off.")
    for name in ("distribution", "dockyard"):
        on_get, off_get = median(f"{name}-metrics", "get_rps"), median(f"{name}-off", "get_rps")
        on_push = median(f"{name}-metrics", "push_ips")
        off_push = median(f"{name}-off", "push_ips")
        if on_get and off_get and on_push and off_push:
            lines.append(f"- {name}: with metrics on, manifest GETs at "
                         f"{on_get / off_get:.2f}x and pushes at {on_push / off_push:.2f}x "
                         f"of off.")
    batched = median("dockyard-batched", "get_rps")
    off = median("dockyard-off", "get_rps")
    if batched and off:
        lines.append(f"- dockyard with maxevents {BATCHED}: manifest GETs at "
                     f"{batched / off:.2f}x of off.")
    loads = [entry["load"] for entries in results.values() for entry in entries]
    lines.append(f"- Other load before the timed runs: at most {max(loads):.2f} cores.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--receive"]:
        receive(int(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--images", type=int, default=150, help="images each push thread pushes")
    parser.add_argument("--only", default="", help="comma-separated setups to run, e.g. "
                        "dockyard-on,dockyard-off (default: all four)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--dockyard-cmd", default=f"{sys.executable} -m dockyard serve {{config}}")
    options = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/webhooks.py", *argv])
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as scratch:
        setups = make_setups(Path(scratch), shlex.split(options.dockyard_cmd))
        if options.only:
            setups = [setup for setup in setups if setup.label in options.only.split(",")]
        results: dict[str, list[dict[str, float]]] = {}
        for number in range(options.rounds):
            for setup in setups:
                log(f"round {number + 1}: {setup.label}")
                results.setdefault(setup.label, []).append(one_round(setup, options, number))
                log(f"  {results[setup.label][-1]}")
    text = report(results, options, command)
    print(text)
    if options.out:
        options.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
