"""deploy/dockyard.service: systemd accepts it, and dockyard does what Type=notify expects."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.support.container_image import REPO
from tests.support.server import free_port, require_tool

UNIT = REPO / "deploy/dockyard.service"
INSTALLED_COMMAND = "/usr/local/bin/dockyard"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_COMMAND} serve " in text
    # verify checks that ExecStart's program exists: point it at this installation's.
    unit = tmp_path / "dockyard.service"
    unit.write_text(text.replace(INSTALLED_COMMAND, str(Path(sys.executable).parent /
                                                         "dockyard")))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "dockyard.service" not in result.stderr, result.stderr
    for hardening in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "ReadWritePaths=/var/lib/registry", "User=dockyard"):
        assert hardening in text


def test_the_server_tells_the_service_manager_it_is_ready(tmp_path: Path) -> None:
    """With NOTIFY_SOCKET set (as systemd sets it for Type=notify), READY=1 arrives once,
    when /v2/ is served."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = tmp_path / "notify.sock"
    listener.bind(str(address))
    listener.settimeout(60)
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "http": {"addr": f"127.0.0.1:{port}"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}}}))
    server = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "serve", str(config)],
        env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(address)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        message = listener.recv(4096)
        assert message == b"READY=1"
        # The port is bound: a request now waits for the worker if need be, never refused.
        assert httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=30).status_code == 200
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0
        listener.close()
