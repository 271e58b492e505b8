"""The machine: how busy others keep it, what it is, and its limits (sha256, disk, nginx)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from .clients import curl_download
from .common import CLOCK_TICKS, REPO_ROOT, MiB
from .servers import Nginx
from .settings import Settings


def host_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process plus its reaped children (curl, wrk, ab, skopeo)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


QUIET_CORES = 0.3


def wait_for_quiet(max_wait: float) -> float:
    """Wait (at most `max_wait` s) until other processes use less than QUIET_CORES cores.

    The machine is shared, so a measurement that starts while something else is busy is
    mostly measuring that. Returns the last background load seen, in cores.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy, mine, started = host_busy_seconds(), own_cpu_seconds(), time.monotonic()
        time.sleep(0.5)
        elapsed = time.monotonic() - started
        load = max(0.0, (host_busy_seconds() - busy) - (own_cpu_seconds() - mine)) / elapsed
        if load < QUIET_CORES or time.monotonic() >= deadline:
            return load


# ---- limits of the machine, measured in the same run


def sha256_rate(total: int) -> float:
    """MB/s of hashlib.sha256 over `total` bytes of 16 MiB buffers (one core)."""
    buffer = os.urandom(16 * MiB)
    hasher = hashlib.sha256()
    started = time.perf_counter()
    done = 0
    while done < total:
        piece = memoryview(buffer)[: min(len(buffer), total - done)]
        hasher.update(piece)
        done += len(piece)
    return total / (time.perf_counter() - started) / 1e6


def disk_write_rate(directory: Path, total: int) -> float:
    """MB/s writing `total` bytes in 4 MiB chunks and then fsync, in `directory`."""
    chunk = os.urandom(4 * MiB)
    path = directory / "disk-write-test.bin"
    try:
        started = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            done = 0
            while done < total:
                done += os.write(fd, chunk[: min(len(chunk), total - done)])
            os.fsync(fd)
        finally:
            os.close(fd)
        return total / (time.perf_counter() - started) / 1e6
    finally:
        path.unlink(missing_ok=True)


def nginx_pull_rate(nginx: Nginx, name: str, size: int) -> float:
    return curl_download(f"{nginx.base}/{name}", size)


def limits_round(
    settings: Settings, workdir: Path, nginx: Nginx | None, blob_name: str, blob_size: int
) -> dict[str, float]:
    values = {
        "limit_sha256": sha256_rate(settings.limit_size),
        "limit_disk": disk_write_rate(workdir, settings.limit_size),
    }
    if nginx is not None:
        values["limit_nginx"] = nginx_pull_rate(nginx, blob_name, blob_size)
    return values


# ---- what the machine and the tools are


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _git_revision() -> str:
    revision = tool_version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{4,40}", revision):
        return "no commit"
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if status.stdout.strip():
            revision += " plus uncommitted changes in src/"
    return revision


def machine_info(settings: Settings) -> dict[str, str]:
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        dockyard_version = importlib.metadata.version("dockyard")
    except importlib.metadata.PackageNotFoundError:
        dockyard_version = "unknown"
    distribution = tool_version([settings.distribution_cmd[0], "--version"])
    dockyard_cmd = " ".join(
        "python" if part == sys.executable else part for part in settings.dockyard_cmd
    )
    return {
        "cpus": f"{os.cpu_count()} CPUs ({cpu_model})",
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "distribution": distribution,
        "dockyard": f"{dockyard_version} ({_git_revision()}), served by `{dockyard_cmd}`"
        + ("; its index in PostgreSQL (`database:`) for the tags, catalog and gc scenarios"
           if settings.index == "postgres" else ""),
        "tools": "; ".join(
            [
                tool_version(["curl", "--version"]).split(" (")[0],
                tool_version(["wrk", "-v"]).split(" [")[0],
                tool_version(["ab", "-V"]).replace("This is ", "").split(" <")[0],
                tool_version(["skopeo", "--version"]),
                tool_version(["nginx", "-v"]).replace("nginx version: ", ""),
            ]
        ),
    }
