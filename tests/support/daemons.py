"""Private container daemons (dockerd, containerd) for the real-client tests.

Each daemon gets its own data directories, its own socket and no network setup of its own
(no bridge, no iptables), so it can run beside anything else on the machine and is stopped
cleanly when the tests end.  Socket paths must stay short (the kernel limits unix socket
paths to 108 bytes), so the runtime directories live in a short temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.clients import run


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    log_path: Path
    socket: Path
    env: dict[str, str]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(check: list[str], daemon: Daemon, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(
                f"{what} exited early ({daemon.process.returncode}):\n" + daemon.logs()[-5000:]
            )
        result = run(check, env=daemon.env, check=False, timeout=30)
        if result.returncode == 0:
            return
        last = result.stderr
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not start in {timeout}s: {last}\n" + daemon.logs()[-5000:])


@contextlib.contextmanager
def run_dockerd(
    tmp: Path,
    dockerd: str,
    docker: str,
    settings: Mapping[str, Any] | None = None,
    daemon_env: Mapping[str, str] | None = None,
) -> Iterator[Daemon]:
    """A private dockerd (vfs storage, no networking) and the environment for its client.

    `settings` go in the daemon's ``daemon.json`` (e.g. ``registry-mirrors``); `daemon_env` is
    added to the daemon's own environment (e.g. proxy variables)."""
    runtime = Path(tempfile.mkdtemp(prefix="dy-docker-"))
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    client_config = tmp / "client-config"
    client_config.mkdir(exist_ok=True)
    (client_config / "config.json").write_text("{}")
    daemon_config = tmp / "daemon.json"
    daemon_config.write_text(json.dumps(dict(settings or {})))
    socket = runtime / "docker.sock"
    log_path = tmp / "dockerd.log"
    command = [
        dockerd,
        "--config-file",
        str(daemon_config),
        "--storage-driver",
        "vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--data-root",
        str(data),
        "--exec-root",
        str(runtime / "exec"),
        "--pidfile",
        str(runtime / "docker.pid"),
        "-H",
        f"unix://{socket}",
        # Loopback registries are insecure (plain HTTP) by default; say so anyway.
        "--insecure-registry",
        "127.0.0.0/8",
    ]
    env = {
        "DOCKER_HOST": f"unix://{socket}",
        "DOCKER_CONFIG": str(client_config),
        "DOCKER_CLI_EXPERIMENTAL": "enabled",
        "DOCKER_BUILDKIT": "0",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(daemon_env or {})},
        )
    daemon = Daemon(process, log_path, socket, env)
    try:
        _wait_for([docker, "version"], daemon, "dockerd")
        yield daemon
    finally:
        _stop(process)
        shutil.rmtree(runtime, ignore_errors=True)


CONTAINERD_DISABLED_PLUGINS = [
    # Nothing here runs containers or needs kernel features beyond plain files.
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
]


@contextlib.contextmanager
def run_containerd(tmp: Path, containerd: str, ctr: str) -> Iterator[Daemon]:
    """A private containerd with only the native snapshotter, and the ``ctr`` environment."""
    runtime = Path(tempfile.mkdtemp(prefix="dy-ctrd-"))
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    socket = runtime / "containerd.sock"
    config = tmp / "config.toml"
    config.write_text(
        "version = 2\n"
        f"root = {json.dumps(str(root))}\n"
        f"state = {json.dumps(str(runtime / 'state'))}\n"
        f"disabled_plugins = {json.dumps(CONTAINERD_DISABLED_PLUGINS)}\n"
        "[grpc]\n"
        f"  address = {json.dumps(str(socket))}\n"
        "[ttrpc]\n"
        f"  address = {json.dumps(str(runtime / 'containerd.sock.ttrpc'))}\n"
        "[debug]\n"
        '  address = ""\n'
        "[metrics]\n"
        '  address = ""\n'
    )
    log_path = tmp / "containerd.log"
    env = {
        "CONTAINERD_ADDRESS": str(socket),
        "CONTAINERD_NAMESPACE": "dockyard-tests",
        "CONTAINERD_SNAPSHOTTER": "native",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [containerd, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(runtime)},
        )
    daemon = Daemon(process, log_path, socket, env)
    try:
        _wait_for([ctr, "version"], daemon, "containerd")
        yield daemon
    finally:
        _stop(process)
        shutil.rmtree(runtime, ignore_errors=True)
