"""http.addr as distribution reads it: `:PORT` listens on IPv6 and IPv4 alike, and IPv6
addresses are written in brackets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.server import IN_CI, free_port


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not ipv6_loopback() and not IN_CI, reason="no IPv6 loopback here")


@contextmanager
def serving(tmp_path: Path, addr: str, probe_url: str) -> Iterator[Path]:
    """dockyard on `addr` until the block ends; yields the path of its output."""
    config = {"version": 0.1, "http": {"addr": addr},
              "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(path)],
                                   stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    httpx.get(probe_url, timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.05)
            yield log_path
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.parametrize("host", ["", "[::]"])
def test_all_interfaces_means_ipv6_and_ipv4(tmp_path: Path, host: str) -> None:
    port = free_port()
    with serving(tmp_path, f"{host}:{port}", f"http://127.0.0.1:{port}/v2/") as log:
        for url in (f"http://127.0.0.1:{port}/v2/", f"http://[::1]:{port}/v2/"):
            assert httpx.get(url, timeout=30).status_code == 200, url
        assert f"serving http://[::]:{port}/v2/" in log.read_text()


def test_ipv6_loopback_address(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, f"[::1]:{port}", f"http://[::1]:{port}/v2/") as log:
        assert httpx.get(f"http://[::1]:{port}/v2/", timeout=30).status_code == 200
        assert f"serving http://[::1]:{port}/v2/" in log.read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
