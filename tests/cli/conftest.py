"""Running `dockyard ls/tags/inspect/rm/du` as a subprocess against live registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
)
from tests.support.server import RunningRegistry, run_registry

KINDS = ["dockyard", "distribution"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus any credentials or docker config of the machine running tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DOCKYARD_") and k != "DOCKER_CONFIG"}
    env["HOME"] = str(home)
    return {**env, **(extra or {})}


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        completed = subprocess.run([sys.executable, "-m", "dockyard", *args],
                                   capture_output=True, text=True, timeout=120,
                                   env=clean_env(home, env), stdin=subprocess.DEVNULL,
                                   check=False)
        assert "Traceback" not in completed.stderr, completed.stderr
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture(params=KINDS)
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRegistry]:
    """A fresh dockyard, then a fresh distribution 2.8.2 (deletes enabled)."""
    with run_registry(tmp_path / request.param, kind=request.param) as running:
        yield running


def image_with(layers: list[bytes], media_type: str = OCI_MANIFEST,
               arch: str = "amd64") -> Image:
    """An image with exactly these layers (so tests can share layers between images)."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []},
                         "nonce": os.urandom(8).hex()}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)
                   for layer in layers],
    }
    return Image(config, layers, json.dumps(document).encode(), media_type)


def image_size(image: Image) -> int:
    """Config plus distinct layers."""
    return len(image.config) + sum(len(layer) for layer in {*image.layers})
