"""`dockyard health CONFIG`: the exit code a container HEALTHCHECK or a service manager
reads, from the registry the config describes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.server import free_port, run_registry


def health(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "health", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_healthy_registry_exits_0_and_a_missing_one_1(tmp_path: Path) -> None:
    with run_registry(tmp_path) as running:
        config = next(tmp_path.glob("dockyard-*.yml"))
        answered = health(config)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.strip() == f"{running.url}/debug/health: healthy"
    stopped = health(config)
    assert stopped.returncode == 1
    assert "/debug/health" in stopped.stderr and "Traceback" not in stopped.stderr


def test_a_registry_under_a_prefix_is_asked_there(tmp_path: Path) -> None:
    port = free_port()
    with run_registry(tmp_path, port=port, config={"http": {"prefix": "/registry"}}):
        config = next(tmp_path.glob("dockyard-*.yml"))
        assert yaml.safe_load(config.read_text())["http"]["prefix"] == "/registry"
        answered = health(config)
        assert answered.returncode == 0, answered.stderr
        assert f":{port}/registry/debug/health: healthy" in answered.stdout
