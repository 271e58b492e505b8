"""Constants and small helpers every module of the benchmark shares."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MiB = 1024 * 1024
GiB = 1024 * MiB
HOST = "127.0.0.1"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"

DISTRIBUTION = "distribution"
DOCKYARD = "dockyard"
SERVERS = (DISTRIBUTION, DOCKYARD)
# Results of the machine-limit measurements are filed under this name.
MACHINE = "machine"

X = "\u00d7"  # the multiplication sign of ratios
NA = "\u2013"  # a dash for what was not measured

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A scenario could not be completed against one server."""


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def blob_dir(root: Path, digest: str) -> Path:
    """The directory of a blob in distribution's layout under a storage root."""
    algorithm, hexpart = digest.split(":", 1)
    return root / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart


def count_blobs(root: Path) -> int:
    """Blob data files in a store (distribution's layout, which both servers use)."""
    base = root / "docker/registry/v2/blobs/sha256"
    if not base.is_dir():
        return 0
    total = 0
    for prefix in os.scandir(base):
        if not prefix.is_dir():
            continue
        for entry in os.scandir(prefix.path):
            if os.path.exists(os.path.join(entry.path, "data")):
                total += 1
    return total
