"""Start registries (dockyard or distribution 2.8.2) as real subprocesses for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str) -> str:
    """Path of an external tool; a missing tool skips locally but fails in CI."""
    import pytest

    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if value is None:
            merged.pop(key, None)  # None removes a key of the base config
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class RunningRegistry:
    kind: str
    url: str
    host: str
    root: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(**{"base_url": self.url, "timeout": 60, **kwargs})

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def registry_command(kind: str, config_path: Path) -> list[str]:
    if kind == "dockyard":
        return [sys.executable, "-m", "dockyard", "serve", str(config_path)]
    if kind == "distribution":
        binary = require_tool("docker-registry")
        return [binary, "serve", str(config_path)]
    raise ValueError(kind)


def registry_environment(changes: Mapping[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **changes}
    return {name: value for name, value in merged.items() if value is not None}


@contextmanager
def run_registry(
    tmp: Path,
    kind: str = "dockyard",
    root: Path | None = None,
    config: dict[str, Any] | None = None,
    env: Mapping[str, str | None] | None = None,
    scheme: str = "http",
) -> Iterator[RunningRegistry]:
    """Run a registry on a free loopback port until the block ends; a variable whose value
    in `env` is None is removed from the registry's environment."""
    port = free_port()
    root = root or tmp / "store"
    root.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    settings = deep_merge(base, config or {})
    config_path = tmp / f"{kind}-{port}.yml"
    config_path.write_text(yaml.safe_dump(settings))
    log_path = tmp / f"{kind}-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        registry_command(kind, config_path),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=registry_environment(env or {}),
    )
    url = f"{scheme}://127.0.0.1:{port}"
    running = RunningRegistry(kind, url, f"127.0.0.1:{port}", root, config_path, process, log_path)
    try:
        wait_until_serving(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def wait_until_serving(running: RunningRegistry, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.kind} exited early:\n{running.logs()}")
        try:
            httpx.get(running.url + "/v2/", timeout=1, verify=False)
            return
        except httpx.TransportError as error:
            # With mutual TLS the probe has no client certificate: a refused handshake, or
            # (TLS 1.3, where the client finishes first) a connection closed unanswered,
            # still means the server is up.
            refused_handshake = isinstance(error, httpx.RemoteProtocolError | httpx.ReadError) \
                or any(word in str(error).lower() for word in ("ssl", "tls", "alert"))
            if running.url.startswith("https") and refused_handshake:
                return
            time.sleep(0.05)
    raise RuntimeError(f"{running.kind} did not start in {timeout}s:\n{running.logs()}")
