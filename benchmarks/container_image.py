#!/usr/bin/env python3
"""The container image: its size, how soon a container answers /v2/, and its idle memory,
beside distribution 2.8.2 in a container made the same way.

    python benchmarks/container_image.py [--rounds 5] [--out /tmp/image.md]

A private dockerd (vfs storage, host network) builds dockyard's image from the repository's
Dockerfile on a Debian bookworm minbase with python3 (no base image can be pulled here; see
tests/support/container_image.py), and a distribution image from the same base plus Debian's
`docker-registry` binary and registry:2's config (the published registry:2 is Alpine plus a
static binary: its size is quoted, not measured). Both are pushed to a registry on loopback:
the compressed size is what a pull downloads (config plus gzip'd layers, from the manifest);
the uncompressed size is dockerd's. Each round starts a container of each image (`docker run
-d --network host`) and times from the command's start until GET /v2/ answers 200; 3 s later
it sums the resident memory (VmRSS) of the container's processes, then removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.container_image import BASE_TAG, build_image  # noqa: E402
from tests.support.daemons import run_dockerd  # noqa: E402
from tests.support.server import free_port, run_registry  # noqa: E402

DOCKYARD_IMAGE = "dockyard:bench"
DISTRIBUTION_IMAGE = "distribution-debian:bench"
MANIFEST_ACCEPT = ("application/vnd.docker.distribution.manifest.v2+json,"
                   "application/vnd.oci.image.manifest.v1+json")
# registry:2 (2.8.x, linux/amd64) as Docker Hub lists it; it cannot be pulled here.
REGISTRY_2_COMPRESSED_MB = 10.0

DISTRIBUTION_DOCKERFILE = f"""FROM {BASE_TAG}
COPY registry /bin/registry
COPY config.yml /etc/docker/registry/config.yml
EXPOSE 5000
ENTRYPOINT ["/bin/registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
"""


class DockerCommand:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                                timeout=1800)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout


def build_distribution_image(docker: DockerCommand, work: Path) -> None:
    context = work / "distribution-context"
    context.mkdir()
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry (Debian's distribution 2.8.2) is needed")
    shutil.copy(binary, context / "registry")
    shutil.copy(REPO_ROOT / "deploy/image/config.yml", context / "config.yml")
    (context / "Dockerfile").write_text(DISTRIBUTION_DOCKERFILE)
    docker("build", "--tag", DISTRIBUTION_IMAGE, str(context))


def sizes(docker: DockerCommand, image: str, registry: str) -> tuple[float, float]:
    """(compressed MB as pulled, uncompressed MB) of `image`."""
    uncompressed = int(docker("image", "inspect", "--format", "{{.Size}}", image))
    target = f"{registry}/bench/{image.split(':')[0]}:latest"
    docker("tag", image, target)
    docker("push", target)
    manifest = httpx.get(f"http://{registry}/v2/bench/{image.split(':')[0]}/manifests/latest",
                         headers={"Accept": MANIFEST_ACCEPT}).json()
    compressed = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return compressed / 1e6, uncompressed / 1e6


def container_rss_mb(docker: DockerCommand, name: str) -> float:
    pids = docker("top", name, "-eo", "pid").split()[1:]
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total / 1e6


def start_once(docker: DockerCommand, image: str) -> tuple[float, float]:
    """(seconds until /v2/ answered, idle MB) for one new container of `image`."""
    port = free_port()
    name = f"bench-{port}"
    began = time.monotonic()
    docker("run", "--detach", "--network", "host", "--name", name,
           "--env", f"REGISTRY_HTTP_ADDR=127.0.0.1:{port}", image)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - began > 120:
                raise RuntimeError(f"{image} did not serve:\n{docker('logs', name)}")
            time.sleep(0.01)
        started = time.monotonic() - began
        time.sleep(3)
        return started, container_rss_mb(docker, name)
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dy-image-bench-"))
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with run_dockerd(work / "dockerd", shutil.which("dockerd") or "dockerd",
                         shutil.which("docker") or "docker") as daemon:
            docker = DockerCommand(daemon.env)
            began = time.monotonic()
            build_image(["docker"], daemon.env, DOCKYARD_IMAGE, work)
            build_seconds = time.monotonic() - began
            build_distribution_image(docker, work)
            with run_registry(work / "sink") as sink:
                measured = {name: sizes(docker, image, sink.host) for name, image in
                            (("dockyard", DOCKYARD_IMAGE), ("distribution", DISTRIBUTION_IMAGE))}
                base = sizes(docker, BASE_TAG, sink.host)
            for round_no in range(options.rounds):
                for name, image in (("distribution", DISTRIBUTION_IMAGE),
                                    ("dockyard", DOCKYARD_IMAGE)):
                    seconds, rss = start_once(docker, image)
                    entry = results.setdefault(name, {"start": [], "rss": []})
                    entry["start"].append(seconds)
                    entry["rss"].append(rss)
                    print(f"round {round_no + 1}: {name} {seconds:.2f}s {rss:.1f} MB",
                          flush=True)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    report = render(measured, base, results, build_seconds, options.rounds)
    print(report)
    if options.out:
        options.out.write_text(report)


def render(measured: dict[str, tuple[float, float]], base: tuple[float, float],
           results: dict[str, dict[str, list[float]]], build_seconds: float,
           rounds: int) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(results[name][key])

    lines = [
        f"`python benchmarks/container_image.py --rounds {rounds}`; medians of {rounds} "
        "rounds; the base (Debian bookworm minbase + python3) is "
        f"{base[0]:.1f} MB compressed, {base[1]:.1f} MB uncompressed; dockyard's image "
        f"built in {build_seconds:.0f} s (vfs storage driver, base cached).",
        "",
        "| | compressed MB | uncompressed MB | start to first /v2/ 200 (s) | idle RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("distribution", "dockyard"):
        compressed, uncompressed = measured[name]
        lines.append(f"| {name} on the same base | {compressed:.1f} | {uncompressed:.1f} | "
                     f"{median(name, 'start'):.2f} | {median(name, 'rss'):.1f} |")
    lines.append(f"| registry:2 as published (Alpine) | ~{REGISTRY_2_COMPRESSED_MB:.0f} | | | |")
    lines += ["", "Raw: " + json.dumps(results)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
