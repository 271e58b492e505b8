"""skopeo copy of a multi-layer image, pushed and pulled back: a real client end to end."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from .common import HOST, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, BenchError
from .servers import Server
from .settings import Settings


def tar_with_file(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_oci_layout(directory: Path, tag: str, layer_count: int, layer_size: int) -> None:
    """An OCI image layout with `layer_count` gzip layers of random content."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        (blobs / hexdigest).write_bytes(data)
        return "sha256:" + hexdigest

    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for index in range(layer_count):
        tar = tar_with_file(f"layer{index}.bin", os.urandom(layer_size))
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        compressed = gzip.compress(tar, compresslevel=1, mtime=0)
        layers.append(
            {"mediaType": OCI_LAYER_GZIP, "digest": put(compressed), "size": len(compressed)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
            "layers": layers,
        }
    ).encode()
    image_index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_text(json.dumps(image_index))


def run_skopeo(args: list[str], policy: Path) -> float:
    argv = ["skopeo", "--policy", str(policy), "copy", "--quiet", *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("skopeo did not finish in 600s") from exc
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"skopeo exit {done.returncode}: {done.stderr.strip()[:500]}")
    return elapsed


def skopeo_round(
    server: Server, settings: Settings, workdir: Path, policy: Path, round_no: int
) -> dict[str, float]:
    # Fresh random layers every time, so neither skopeo's blob-info cache nor the registry
    # already knows them (no cross-repository mounts, no skipped uploads).
    base = workdir / f"skopeo-{server.name}-{round_no}"
    source = base / "src"
    target = base / "pulled"
    write_oci_layout(source, "v1", settings.layer_count, settings.layer_size)
    ref = f"docker://{HOST}:{server.port}/bench/skopeo{round_no}:v1"
    try:
        push = run_skopeo(["--dest-tls-verify=false", f"oci:{source}:v1", ref], policy)
        pull = run_skopeo(["--src-tls-verify=false", ref, f"oci:{target}:v1"], policy)
        pulled = json.loads((target / "index.json").read_text())
        if len(pulled.get("manifests", [])) != 1:
            raise BenchError("skopeo pull produced an unexpected index.json")
        for layer_file in (source / "blobs" / "sha256").iterdir():
            if not (target / "blobs" / "sha256" / layer_file.name).exists():
                raise BenchError(f"pulled image lacks blob {layer_file.name}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"skopeo_push": push, "skopeo_pull": pull}
