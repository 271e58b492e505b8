"""Resident memory of a running server and its workers, measured from /proc."""

from __future__ import annotations

import contextlib
from pathlib import Path


def _server_processes(pid: int) -> list[int]:
    return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def _status_total_kib(pid: int, field: str) -> int:
    total = 0
    for process in _server_processes(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except FileNotFoundError:
            continue  # a helper process that has just exited
        for line in status.splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total


def server_rss_kib(pid: int) -> int:
    """VmRSS of the server process and its worker children, added up (KiB)."""
    return _status_total_kib(pid, "VmRSS")


def reset_peak_rss(pid: int) -> None:
    """Start measuring peak RSS afresh for the server and its workers (clear_refs 5)."""
    for process in _server_processes(pid):
        with contextlib.suppress(FileNotFoundError):
            Path(f"/proc/{process}/clear_refs").write_text("5")


def server_peak_rss_kib(pid: int) -> int:
    """VmHWM (peak RSS since the last reset) of the server and its workers, added up (KiB):
    an upper bound for what they held at any one moment."""
    return _status_total_kib(pid, "VmHWM")
