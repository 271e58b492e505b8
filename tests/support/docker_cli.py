"""The docker CLI against a private dockerd (tests.support.daemons.run_dockerd)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.support.clients import run
from tests.support.daemons import Daemon, run_dockerd
from tests.support.images import Image, write_docker_archive
from tests.support.server import require_tool


class Docker:
    def __init__(self, binary: str, daemon: Daemon) -> None:
        self.binary = binary
        self.daemon = daemon

    def __call__(self, *args: str, check: bool = True) -> str:
        return run([self.binary, *args], env=self.daemon.env, check=check).stdout

    def push(self, reference: str) -> str:
        """Push and return the manifest digest docker reports."""
        output = self("push", reference)
        found = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
        assert found, f"no digest in docker push output:\n{output}"
        return found.group(1)

    def load(self, archive: Path) -> None:
        self("load", "--input", str(archive))

    def image_id(self, reference: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", reference).strip()

    def repo_digests(self, reference: str) -> list[str]:
        output = self("image", "inspect", "--format", "{{json .RepoDigests}}", reference)
        return list(json.loads(output))

    def has_image(self, reference: str) -> bool:
        result = run([self.binary, "image", "inspect", reference], env=self.daemon.env, check=False)
        return result.returncode == 0


@contextlib.contextmanager
def running_docker(
    tmp: Path,
    settings: Mapping[str, Any] | None = None,
    daemon_env: Mapping[str, str] | None = None,
) -> Iterator[Docker]:
    """The docker CLI of a private dockerd (see `run_dockerd` for the arguments)."""
    binary = require_tool("docker")
    dockerd = require_tool("dockerd")
    with run_dockerd(tmp, dockerd, binary, settings, daemon_env) as daemon:
        yield Docker(binary, daemon)


def load_image(docker: Docker, tmp_path: Path, image: Image, reference: str) -> None:
    archive = write_docker_archive(
        tmp_path / f"{image.config.digest[7:19]}.tar", image, [reference]
    )
    docker.load(archive)
    assert docker.image_id(reference) == image.config.digest
